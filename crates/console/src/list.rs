//! Selection and scrolling of long lists that are rendered one window at a time: only the
//! rows between `offset` and `offset + height` are ever turned into text, so a list of
//! 100,000 entries costs what a list of 40 does.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

/// Where a list's selection and viewport are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListCursor {
    pub selected: usize,
    /// First row shown.
    pub offset: usize,
    /// The user moved the selection (before that, "next" starts at the first row).
    pub touched: bool,
}

impl ListCursor {
    pub fn select(&mut self, index: usize, len: usize) {
        self.selected = index.min(len.saturating_sub(1));
        self.touched = true;
    }

    /// Moves by `delta` rows, staying inside `0..len`.
    pub fn move_by(&mut self, delta: isize, len: usize) {
        if len == 0 {
            return;
        }
        let target = self.selected.saturating_add_signed(delta);
        self.select(target, len);
    }

    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
        self.offset = self.offset.min(len.saturating_sub(1));
    }

    /// Adjusts `offset` so the selection is inside a viewport of `height` rows.
    pub fn scroll_into_view(&mut self, height: usize, len: usize) {
        self.clamp(len);
        if height == 0 {
            return;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        // No blank space below the last row when the list could fill the viewport.
        let max_offset = len.saturating_sub(height);
        self.offset = self.offset.min(max_offset);
    }

    /// Scrolls the viewport (mouse wheel) and drags the selection along when it leaves it.
    pub fn scroll_by(&mut self, delta: isize, height: usize, len: usize) {
        let max_offset = len.saturating_sub(height.max(1));
        self.offset = self.offset.saturating_add_signed(delta).min(max_offset);
        if self.selected < self.offset {
            self.selected = self.offset;
        } else if height > 0 && self.selected >= self.offset + height {
            self.selected = self.offset + height - 1;
        }
        self.touched = true;
    }

    /// The row index under screen row `y` of a list drawn in `area`, if any.
    pub fn row_at(&self, area: Rect, y: u16, len: usize) -> Option<usize> {
        if y < area.y || y >= area.y + area.height {
            return None;
        }
        let index = self.offset + usize::from(y - area.y);
        (index < len).then_some(index)
    }
}

/// Draws pre-built rows one per screen line, highlighting `selected` across the full width.
pub fn render_rows<'a>(
    frame: &mut Frame,
    area: Rect,
    rows: impl Iterator<Item = Line<'a>>,
    selected_row: Option<usize>,
    selection: Style,
) {
    for (i, line) in rows.take(area.height as usize).enumerate() {
        let row = Rect {
            y: area.y + i as u16,
            height: 1,
            ..area
        };
        frame.render_widget(line, row);
        if selected_row == Some(i) {
            frame.buffer_mut().set_style(row, selection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewport_follows_the_selection() {
        let mut cursor = ListCursor::default();
        cursor.move_by(15, 100);
        cursor.scroll_into_view(10, 100);
        assert_eq!((cursor.selected, cursor.offset), (15, 6));
        cursor.move_by(-12, 100);
        cursor.scroll_into_view(10, 100);
        assert_eq!((cursor.selected, cursor.offset), (3, 3));
        cursor.move_by(1000, 100);
        cursor.scroll_into_view(10, 100);
        assert_eq!((cursor.selected, cursor.offset), (99, 90));
        // The list shrank under the cursor.
        cursor.scroll_into_view(10, 5);
        assert_eq!((cursor.selected, cursor.offset), (4, 0));
    }

    #[test]
    fn wheel_scrolling_drags_the_selection() {
        let mut cursor = ListCursor::default();
        cursor.scroll_by(20, 10, 100);
        assert_eq!((cursor.selected, cursor.offset), (20, 20));
        cursor.scroll_by(-15, 10, 100);
        assert_eq!((cursor.selected, cursor.offset), (14, 5));
        assert_eq!(cursor.row_at(Rect::new(0, 2, 10, 10), 4, 100), Some(7));
        assert_eq!(cursor.row_at(Rect::new(0, 2, 10, 10), 12, 100), None);
    }
}
