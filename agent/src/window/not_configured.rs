//! The window shown when this agent does not know its relay: it opens anyway (a double-click on the
//! desktop icon must never show nothing) and says what is missing and whom to ask.

use eframe::egui::{self, Color32, RichText};

use super::{WindowError, layout};

/// What the user reads, in plain words; `detail` (the technical cause) follows in small print.
pub const HEADLINE: &str = "This computer is not set up for remote help yet";

/// The explanation under [`HEADLINE`].
pub const EXPLANATION: &str = "Tether needs to know your organisation's support relay before it can \
give you a code. Ask your IT department for the Tether package made for your organisation, or ask \
the person helping you for the relay address and its certificate fingerprint.";

/// The line for IT.
pub const FOR_IT: &str = "For IT: install the package from `tether-relay agent-package --org ...`, \
or put relay and relay_cert_sha256 in /etc/tether/agent.toml (`tether-relay agent-config` writes it).";

struct NotConfigured {
    detail: String,
}

impl eframe::App for NotConfigured {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add_space(8.0);
            ui.label(RichText::new("Tether remote help").size(24.0));
            ui.add_space(28.0);
            ui.label(
                RichText::new(HEADLINE)
                    .size(26.0)
                    .strong()
                    .color(Color32::from_rgb(170, 90, 0)),
            );
            ui.add_space(16.0);
            ui.label(RichText::new(EXPLANATION).size(18.0));
            ui.add_space(16.0);
            ui.label(RichText::new(FOR_IT).size(14.0));
            ui.add_space(12.0);
            ui.label(
                RichText::new(format!("Details: {}", self.detail))
                    .size(12.0)
                    .color(Color32::GRAY),
            );
            ui.add_space(24.0);
            let close = egui::Button::new(RichText::new("Close").size(20.0).strong());
            if ui.add_sized([160.0, 44.0], close).clicked() {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
        });
    }
}

/// Opens the "not set up" window and runs until the user closes it. The message is also printed
/// to standard output, as every window state is, for scripts and the UI tests.
pub fn run(detail: &str) -> Result<(), WindowError> {
    tether_net::quietln!("{HEADLINE}. {EXPLANATION}");
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(layout::TITLE)
            .with_inner_size(layout::SIZE)
            .with_position([0.0, 0.0])
            .with_resizable(false),
        ..Default::default()
    };
    let detail = detail.to_string();
    eframe::run_native(
        layout::TITLE,
        options,
        Box::new(move |cc| {
            // The same light look as the main window.
            cc.egui_ctx.set_theme(egui::Theme::Light);
            Ok(Box::new(NotConfigured { detail }))
        }),
    )
    .map_err(|e| WindowError::Window(e.to_string()))
}
