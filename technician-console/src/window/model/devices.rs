//! The devices panel: the organisation's enrolled devices, and connecting to one without a code
//! (the person logged in there is asked, or, ticked "unattended", IT's signed policy answers).

use tether_proto::fleet::DeviceSummary;

use super::{Action, Model};
use crate::window::model::Consent;

/// What the devices panel shows.
#[derive(Debug, Clone, Default)]
pub struct DevicesPanel {
    /// The devices, as the relay listed them (none until the first refresh).
    pub devices: Vec<DeviceSummary>,
    /// Why the list could not be had.
    pub error: Option<String>,
    /// A list is on its way.
    pub loading: bool,
    /// Connect unattended: nobody is asked, only IT's policy on the device applies.
    pub unattended: bool,
}

impl Model {
    /// "Refresh" in the devices panel.
    pub fn refresh_devices(&mut self) -> Option<Action> {
        if self.devices.loading {
            return None;
        }
        self.devices.loading = true;
        Some(Action::ListDevices)
    }

    /// The relay's device list (or why there is none).
    pub(super) fn devices_listed(&mut self, list: Result<Vec<DeviceSummary>, String>) {
        self.devices.loading = false;
        match list {
            Ok(devices) => {
                self.say(format!("devices: {} enrolled", devices.len()));
                for d in &devices {
                    let key = if d.device_key.is_some() {
                        "can be reached without a code"
                    } else {
                        "no device key: enroll it again to connect"
                    };
                    self.say(format!("device: {} ({}): {key}", d.hostname, d.device_id));
                }
                self.devices.devices = devices;
                self.devices.error = None;
            }
            Err(e) => {
                self.say(format!("devices: not listed: {e}"));
                self.devices.error = Some(e);
            }
        }
    }

    /// "Connect" on the `i`-th device: asks for the ticked scopes, no code.
    pub fn connect_device(&mut self, i: usize) -> Option<Action> {
        if self.busy() {
            return None;
        }
        let device = self.devices.devices.get(i)?.clone();
        if !self.fresh_attempt() {
            return None;
        }
        self.consent = Consent::Waiting { asked: self.ask };
        let how = if self.devices.unattended {
            "unattended: IT's policy on the device answers"
        } else {
            "the person logged in there is asked"
        };
        self.say(format!(
            "consent: asking {} for {} ({how})",
            device.hostname, self.ask
        ));
        Some(Action::ConnectDevice {
            device: device.device_id,
            scopes: self.ask,
            unattended: self.devices.unattended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::Scope;

    fn device(id: &str, key: bool) -> DeviceSummary {
        DeviceSummary {
            device_id: id.into(),
            org: "Acme IT".into(),
            hostname: format!("host-{id}"),
            os: "Debian".into(),
            enrolled_unix: 0,
            first_seen_unix: None,
            last_seen_unix: None,
            last_seq: None,
            packages: 0,
            device_key: key.then(|| tether_proto::org::SecretKey::from_bytes([7; 32]).public()),
        }
    }

    #[test]
    fn a_listed_device_is_connected_to_with_the_ticked_scopes() {
        let mut m = Model::new();
        assert_eq!(m.refresh_devices(), Some(Action::ListDevices));
        assert_eq!(m.refresh_devices(), None, "one list at a time");
        m.devices_listed(Ok(vec![device("d1", true), device("d2", false)]));
        let lines = m.journal().join("\n");
        assert!(lines.contains("devices: 2 enrolled"), "{lines}");
        assert!(lines.contains("host-d2 (d2): no device key"), "{lines}");
        assert_eq!(m.connect_device(0), None, "nothing ticked");
        m.toggle(Scope::Inventory);
        m.devices.unattended = true;
        assert_eq!(
            m.connect_device(0),
            Some(Action::ConnectDevice {
                device: "d1".into(),
                scopes: [Scope::Inventory].into_iter().collect(),
                unattended: true,
            })
        );
        assert_eq!(m.connect_device(1), None, "one session at a time");
        assert_eq!(m.connect_device(5), None);
    }
}
