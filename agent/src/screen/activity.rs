//! What the user is told while a technician views the screen or uses the mouse and keyboard: one
//! guard per activity, "started" when it is made and "stopped" when it ends.

use tokio::sync::mpsc;

use super::StreamCtx;
use crate::ui::AgentEvent;

/// A technician's activity the user sees (viewing a display, controlling). Made with
/// [`Activity::viewing`] or [`Activity::controlling`], which tell the user it started; [`stop`]
/// tells them it stopped. Dropped without `stop` (the stream's task aborted as its session ends),
/// it still tells them, without waiting for room in the queue.
///
/// [`stop`]: Activity::stop
pub(crate) struct Activity {
    events: mpsc::Sender<AgentEvent>,
    /// The "stopped" event, until it is sent.
    stopped: Option<AgentEvent>,
}

impl Activity {
    async fn start(
        events: &mpsc::Sender<AgentEvent>,
        started: AgentEvent,
        stopped: AgentEvent,
    ) -> Self {
        let _ = events.send(started).await;
        Activity {
            events: events.clone(),
            stopped: Some(stopped),
        }
    }

    /// The technician views `display`.
    pub(crate) async fn viewing(ctx: &StreamCtx, display: u32) -> Self {
        let event = |active| AgentEvent::Viewing {
            technician: ctx.technician.clone(),
            display,
            active,
        };
        Activity::start(&ctx.events, event(true), event(false)).await
    }

    /// The technician uses the mouse and keyboard.
    pub(crate) async fn controlling(ctx: &StreamCtx) -> Self {
        let event = |active| AgentEvent::Controlling {
            technician: ctx.technician.clone(),
            active,
        };
        Activity::start(&ctx.events, event(true), event(false)).await
    }

    /// The activity is over: tells the user.
    pub(crate) async fn stop(mut self) {
        if let Some(e) = self.stopped.take() {
            let _ = self.events.send(e).await;
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if let Some(e) = self.stopped.take() {
            // Cannot wait here; a full queue means the front end is far behind or gone.
            let _ = self.events.try_send(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controlling(active: bool) -> AgentEvent {
        AgentEvent::Controlling {
            technician: "Ada of Acme IT".into(),
            active,
        }
    }

    fn active(e: Option<AgentEvent>) -> Option<bool> {
        match e {
            Some(AgentEvent::Controlling { active, .. }) => Some(active),
            _ => None,
        }
    }

    #[tokio::test]
    async fn started_when_made_and_stopped_once_whether_stopped_or_dropped() {
        let (tx, mut rx) = mpsc::channel(4);
        let a = Activity::start(&tx, controlling(true), controlling(false)).await;
        assert_eq!(active(rx.try_recv().ok()), Some(true));
        a.stop().await;
        assert_eq!(active(rx.try_recv().ok()), Some(false));
        assert!(rx.try_recv().is_err(), "stop() then drop says it once");
        // A stream cut mid-activity (its task aborted) still says it stopped.
        let a = Activity::start(&tx, controlling(true), controlling(false)).await;
        drop(a);
        assert_eq!(active(rx.try_recv().ok()), Some(true));
        assert_eq!(active(rx.try_recv().ok()), Some(false));
        assert!(rx.try_recv().is_err());
    }
}
