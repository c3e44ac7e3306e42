//! The inventory panel: the last inventory, one table of it, and the filter.

use tether_proto::Scope;
use tether_proto::inventory::Inventory;
use tether_proto::text::display_safe;

use super::{Action, Model, Table, not_asked};

/// The inventory side panel: the last inventory, one table of it, and the filter.
#[derive(Debug, Clone)]
pub struct InventoryPanel {
    /// The last inventory the agent sent.
    pub inventory: Option<Box<Inventory>>,
    /// A request is under way.
    pub loading: bool,
    /// Why the last request failed.
    pub error: Option<String>,
    /// The table shown.
    pub table: Table,
    /// Rows are kept when any cell contains this (case-insensitive).
    pub filter: String,
    pub(super) all: Vec<Vec<String>>,
    pub(super) shown: Vec<usize>,
}

impl Default for InventoryPanel {
    fn default() -> Self {
        InventoryPanel {
            inventory: None,
            loading: false,
            error: None,
            table: Table::Software,
            filter: String::new(),
            all: Vec::new(),
            shown: Vec::new(),
        }
    }
}

impl InventoryPanel {
    /// Every row of the current table.
    pub fn total(&self) -> usize {
        self.all.len()
    }

    /// The rows the filter keeps, in order.
    pub fn shown(&self) -> impl ExactSizeIterator<Item = &[String]> {
        self.shown.iter().map(|&i| self.all[i].as_slice())
    }

    /// The `n`-th row the filter keeps.
    pub fn shown_row(&self, n: usize) -> Option<&[String]> {
        self.shown.get(n).map(|&i| self.all[i].as_slice())
    }

    fn rebuild(&mut self) {
        // Every cell is text the user's machine reported (package names, mount points, ...).
        self.all = match &self.inventory {
            Some(inv) => self
                .table
                .rows(inv)
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|c| display_safe(&c).into_owned())
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        };
        self.refilter();
    }

    fn refilter(&mut self) {
        let needle = self.filter.trim().to_lowercase();
        self.shown = (0..self.all.len())
            .filter(|&i| {
                needle.is_empty()
                    || self.all[i]
                        .iter()
                        .any(|c| c.to_lowercase().contains(&needle))
            })
            .collect();
    }

    /// One journal line: how many rows match, and the first few of them.
    fn line(&self) -> String {
        let first: Vec<&str> = self
            .shown()
            .take(5)
            .map(|r| r.first().map(|c| c.trim()).unwrap_or(""))
            .collect();
        let more = if self.shown.len() > first.len() {
            ", ..."
        } else {
            ""
        };
        format!(
            "inventory table {}: {} of {} rows match {:?}: {}{more}",
            self.table.name(),
            self.shown.len(),
            self.all.len(),
            self.filter.trim(),
            first.join(", ")
        )
    }
}

impl Model {
    /// "Fetch inventory" (also "Refresh").
    pub fn fetch_inventory(&mut self) -> Option<Action> {
        if self.granted().is_none() || self.inventory.loading {
            return None;
        }
        if !self.asked().contains(Scope::Inventory) {
            self.inventory.error = Some(not_asked(Scope::Inventory));
            return None;
        }
        self.inventory.loading = true;
        self.inventory.error = None;
        Some(Action::FetchInventory)
    }

    /// Shows another inventory table.
    pub fn show_table(&mut self, table: Table) {
        if self.inventory.table != table {
            self.inventory.table = table;
            self.inventory.rebuild();
            let line = self.inventory.line();
            self.say(line);
        }
    }

    /// The filter text changed.
    pub fn set_filter(&mut self, filter: String) {
        if self.inventory.filter != filter {
            self.inventory.filter = filter;
            self.inventory.refilter();
            let line = self.inventory.line();
            self.say(line);
        }
    }

    /// The inventory arrived, or could not be had.
    pub(super) fn inventory_arrived(&mut self, r: Result<Box<Inventory>, String>) {
        self.inventory.loading = false;
        match r {
            Ok(inv) => {
                self.say(format!(
                    "inventory: {} packages, {} disks, {} interfaces, {} filesystems",
                    inv.software.packages.len(),
                    inv.hardware.disks.len(),
                    inv.hardware.interfaces.len(),
                    inv.status.filesystems.len()
                ));
                self.inventory.inventory = Some(inv);
                self.inventory.error = None;
                self.inventory.rebuild();
                let line = self.inventory.line();
                self.say(line);
            }
            Err(e) => {
                self.say(format!("inventory: failed: {e}"));
                self.inventory.error = Some(e);
            }
        }
    }
}
