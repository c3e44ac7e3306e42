//! An enrolled device in service mode, as the fleet tests drive it: enrolled with a token, reporting
//! a fake dpkg status (one package, whose version the test sets) with fast reconnects, every event
//! the service tells kept for the test to wait on.

use std::path::PathBuf;
use std::time::Duration;

use tether_agent::enroll::{DataDir, EnrollConfig, Identity, enroll};
use tether_agent::report::{RunConfig, RunError, RunEvent, run};
use tether_net::RelayTarget;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::WAIT;

/// A device enrolled and running `tether_agent::report::run`; stop it with [`TestDevice::stop`].
#[derive(Debug)]
pub struct TestDevice {
    /// What enrollment stored.
    pub id: Identity,
    dir: tempfile::TempDir,
    status: PathBuf,
    trigger: mpsc::Sender<()>,
    events: mpsc::Receiver<RunEvent>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

fn dpkg_status(version: &str) -> String {
    format!(
        "Package: alpha\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n\
         Description: test\n"
    )
}

impl TestDevice {
    /// Enrolls through `relay` with the enrollment `token` and starts service mode, which reports
    /// `alpha 1.0` at once; `fallback` are the cluster's other nodes.
    pub async fn enroll(
        relay: RelayTarget,
        token: String,
        hostname: &str,
        fallback: Vec<RelayTarget>,
    ) -> TestDevice {
        let dir = tempfile::tempdir().expect("device directory");
        let id = enroll(&EnrollConfig {
            relay,
            token,
            data_dir: DataDir::new(dir.path()),
            hostname: hostname.into(),
        })
        .await
        .expect("the device enrolls");
        let status = dir.path().join("fake-dpkg-status");
        std::fs::write(&status, dpkg_status("1.0")).expect("dpkg status");
        let mut cfg = RunConfig::new(DataDir::new(dir.path()));
        cfg.collector.software.dpkg_status = status.clone();
        cfg.collector.software.tool_path = Some(vec![]);
        cfg.interval = Duration::from_secs(3600);
        cfg.backoff_initial = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_millis(400);
        cfg.fallback = fallback;
        let (trigger, trigger_rx) = mpsc::channel(1);
        let (events_tx, events) = mpsc::channel(256);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));
        TestDevice {
            id,
            dir,
            status,
            trigger,
            events,
            stop,
            task,
        }
    }

    /// `alpha` is now at `version`: the service makes a report of it at once.
    pub async fn report(&self, version: &str) {
        std::fs::write(&self.status, dpkg_status(version)).expect("dpkg status");
        self.trigger.send(()).await.expect("the service runs");
    }

    /// Waits for the service's next event matching `pred`; returns it with the events before it.
    pub async fn next(&mut self, what: &str, pred: impl Fn(&RunEvent) -> bool) -> Vec<RunEvent> {
        let mut seen = Vec::new();
        let events = &mut self.events;
        let found = tokio::time::timeout(WAIT, async {
            while let Some(e) = events.recv().await {
                let hit = pred(&e);
                seen.push(e);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(found, Ok(true)), "no {what}: {seen:?}");
        seen
    }

    /// Waits until report `seq` is acknowledged as new (stored now, not a duplicate), with nothing
    /// left queued on disk; then returns how many reports of this device `store` holds.
    pub async fn stored(
        &mut self,
        seq: u64,
        what: &str,
        store: std::sync::Arc<dyn tether_relay::store::Store>,
    ) -> u64 {
        self.next(
            what,
            |e| matches!(e, RunEvent::Acked { seq: s, duplicate: false } if *s == seq),
        )
        .await;
        assert_eq!(self.queued(), 0, "acknowledged reports leave the queue");
        let device_id = self.id.device_id.clone();
        tokio::task::spawn_blocking(move || store.report_count(&device_id))
            .await
            .expect("the count task")
            .expect("the store counts reports")
    }

    /// The device's data directory.
    pub fn data(&self) -> DataDir {
        DataDir::new(self.dir.path())
    }

    /// Reports waiting on disk for an acknowledgement.
    pub fn queued(&self) -> usize {
        DataDir::new(self.dir.path())
            .queued()
            .expect("the queue reads")
            .len()
    }

    /// Stops service mode; it must end without an error.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("the service task")
            .expect("service mode ends cleanly");
    }
}
