//! The user's cursor over the live screen: the shape the agent sent, drawn where their pointer is, at
//! the pane's scale. Both windows draw it through [`crate::viewer::ScreenPane`]; `--snapshot --cursor`
//! draws it into the picture with [`tether_proto::cursor::CursorShape::draw`].

use eframe::egui;
use tether_proto::cursor::CursorShape;

/// Where the cursor image goes on screen, as `[x, y, width, height]` in points: its hot spot at the
/// pointer position, scaled like the picture whose top-left is at `origin`.
pub fn placement(origin: (f32, f32), scale: f32, (x, y): (i32, i32), s: &CursorShape) -> [f32; 4] {
    [
        origin.0 + (x as f32 - f32::from(s.hot_x)) * scale,
        origin.1 + (y as f32 - f32::from(s.hot_y)) * scale,
        f32::from(s.width) * scale,
        f32::from(s.height) * scale,
    ]
}

/// The cursor's texture, remade only when the shape's serial changes.
#[derive(Default)]
pub struct CursorLayer {
    texture: Option<(u64, egui::TextureHandle)>,
}

impl std::fmt::Debug for CursorLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorLayer")
            .field("serial", &self.texture.as_ref().map(|t| t.0))
            .finish()
    }
}

impl CursorLayer {
    /// Paints `shape` at `pos` over the picture drawn in `picture` at `scale` (clipped to it).
    pub fn paint(
        &mut self,
        ui: &egui::Ui,
        picture: egui::Rect,
        scale: f32,
        pos: Option<(i32, i32)>,
        shape: Option<&CursorShape>,
    ) {
        let (Some(pos), Some(shape)) = (pos, shape) else {
            return;
        };
        if shape.check().is_err() {
            return;
        }
        if self.texture.as_ref().is_none_or(|t| t.0 != shape.serial) {
            let size = [usize::from(shape.width), usize::from(shape.height)];
            let image = egui::ColorImage::from_rgba_premultiplied(size, &shape.rgba);
            let tex = ui
                .ctx()
                .load_texture("remote-cursor", image, egui::TextureOptions::LINEAR);
            self.texture = Some((shape.serial, tex));
        }
        let Some((_, tex)) = &self.texture else {
            return;
        };
        let [x, y, w, h] = placement((picture.min.x, picture.min.y), scale, pos, shape);
        let at = egui::Rect::from_min_size(egui::pos2(x, y), egui::vec2(w, h));
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        ui.painter_at(picture)
            .image(tex.id(), at, uv, egui::Color32::WHITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_spot_lands_on_the_pointer_at_any_scale() {
        let s = CursorShape {
            serial: 1,
            width: 16,
            height: 24,
            hot_x: 4,
            hot_y: 2,
            rgba: vec![0; 16 * 24 * 4],
        };
        assert_eq!(
            placement((100.0, 50.0), 1.0, (10, 20), &s),
            [106.0, 68.0, 16.0, 24.0]
        );
        // At half size the hot spot is still at origin + pointer * scale.
        let [x, y, w, h] = placement((100.0, 50.0), 0.5, (10, 20), &s);
        assert_eq!((x + 4.0 * 0.5, y + 2.0 * 0.5), (105.0, 60.0));
        assert_eq!((w, h), (8.0, 12.0));
    }
}
