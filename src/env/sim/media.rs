//! Media damage: bit rot, bad sectors and misdirected writes, untargeted or aimed at the
//! critical regions of `FaultOptions::targeted`, and the record of every byte range they hit.
//!
//! Invariants:
//! - every injected media fault appends its ranges to `State::damage` (never removed, so the
//!   record survives crashes and restarts) and uses one unit of `media_faults_max`; a fault
//!   that finds nothing to hit (no durable file, no region) does neither;
//! - untargeted faults choose among whole durable files exactly as before targeting existed,
//!   so seeds without targeted faults keep their traces;
//! - targets are chosen by file name and by the simulator's own knowledge of writes and syncs,
//!   never by anything the code under test tells it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use super::fs::{Node, NodeId};
use super::options::TargetRegion;
use super::state::{Damage, DamageKind, DamageRole, Plan, State};

/// One region a media fault may hit: a file and a non-empty byte range of its durable image.
type Region = (NodeId, Range<u64>);

impl State {
    /// Every durable file, whole, in node order: where untargeted faults hit.
    fn whole_files(&self) -> Vec<Region> {
        let files = self.fs.nodes.iter().filter_map(|(&id, node)| match node {
            Node::File(file) if !file.durable.is_empty() => Some((id, 0..file.durable.len() as u64)),
            _ => None,
        });
        files.collect()
    }

    /// Every region of every target in every durable file a target names, in node order.
    fn target_regions(&self) -> Vec<Region> {
        let targets = &self.options.targeted.targets;
        if targets.is_empty() {
            return Vec::new();
        }
        let mut regions = Vec::new();
        for (node, names) in self.fs.names() {
            let Some(Node::File(file)) = self.fs.nodes.get(&node) else { continue };
            let len = file.durable.len() as u64;
            for target in targets.iter().filter(|t| names.iter().any(|(_, name)| t.matches(name))) {
                let range = match &target.region {
                    TargetRegion::Whole => 0..len,
                    TargetRegion::Bytes { start, end } => (*start).min(len)..(*end).min(len),
                    TargetRegion::LastSyncedWrite => match &file.last_synced_write {
                        Some(last) => last.start.min(len)..last.end.min(len),
                        None => 0..0,
                    },
                };
                if !range.is_empty() {
                    regions.push((node, range));
                }
            }
        }
        regions
    }

    /// Whether a write of `range` to `node` overlaps a target region of that file.
    fn write_hits_target(&self, node: NodeId, range: &Range<u64>) -> bool {
        let names = self.fs.names().remove(&node).unwrap_or_default();
        self.options.targeted.targets.iter().any(|target| {
            names.iter().any(|(_, name)| target.matches(name))
                && match target.region {
                    TargetRegion::Whole | TargetRegion::LastSyncedWrite => true,
                    TargetRegion::Bytes { start, end } => range.start < end && start < range.end,
                }
        })
    }

    /// A path of `node` now: a live name first, else a durable one.
    fn path_of(&self, node: NodeId, names: &BTreeMap<NodeId, Vec<(PathBuf, String)>>) -> PathBuf {
        let Some(entries) = names.get(&node) else { return PathBuf::from("?") };
        let live = entries.iter().find(|(parent, name)| {
            self.fs
                .resolve(&super::fs::components(parent).unwrap_or_default(), parent)
                .is_ok_and(|dir| self.fs.dir(dir).live.get(name) == Some(&node))
        });
        live.or(entries.first()).map_or_else(|| PathBuf::from("?"), |(parent, name)| parent.join(name))
    }

    fn record(
        &mut self,
        kind: DamageKind,
        role: DamageRole,
        node: NodeId,
        range: Range<u64>,
        targeted: bool,
    ) {
        let path = self.path_of(node, &self.fs.names());
        let (offset, len) = (range.start, range.end - range.start);
        let at_call = self.call;
        self.damage.push(Damage { kind, role, path, offset, len, at_call, targeted, node });
    }

    fn used(&mut self, targeted: bool) {
        self.media_faults_used += 1;
        if targeted {
            self.stats.targeted_media += 1;
        }
    }

    /// Flips one durable bit somewhere (`pick` chooses the file, byte and bit).
    pub(crate) fn rot_bit(&mut self, pick: u64) {
        let regions = self.whole_files();
        self.rot_in(&regions, pick, false);
    }

    /// Flips one bit of a target region.
    pub(crate) fn rot_target(&mut self, pick: u64) {
        let regions = self.target_regions();
        self.rot_in(&regions, pick, true);
    }

    fn rot_in(&mut self, regions: &[Region], pick: u64, targeted: bool) {
        if regions.is_empty() {
            return;
        }
        let (node, range) = regions[(pick % regions.len() as u64) as usize].clone();
        let offset = range.start + (pick / regions.len() as u64) % (range.end - range.start);
        let bit = (pick >> 59) as u8 % 8;
        self.fs.file_mut(node).durable[offset as usize] ^= 1 << bit;
        self.record(DamageKind::BitRot, DamageRole::Hit, node, offset..offset + 1, targeted);
        self.used(targeted);
        self.stats.bit_rot += 1;
    }

    /// Makes a sector of some durable file bad (`pick` chooses the file and sector).
    pub(crate) fn break_sector(&mut self, pick: u64) {
        let regions = self.whole_files();
        self.break_sector_in(&regions, pick, false);
    }

    /// Makes a sector overlapping a target region bad.
    pub(crate) fn break_target_sector(&mut self, pick: u64) {
        let regions = self.target_regions();
        self.break_sector_in(&regions, pick, true);
    }

    fn break_sector_in(&mut self, regions: &[Region], pick: u64, targeted: bool) {
        if regions.is_empty() {
            return;
        }
        let sector = u64::from(self.options.sector_size_bytes);
        let (node, range) = regions[(pick % regions.len() as u64) as usize].clone();
        let first = range.start / sector;
        let index = first + (pick / regions.len() as u64) % (range.end.div_ceil(sector) - first);
        self.fs.file_mut(node).bad_sectors.insert(index);
        let start = index * sector;
        self.record(DamageKind::BadSector, DamageRole::Hit, node, start..start + sector, targeted);
        self.used(targeted);
        self.stats.bad_sectors += 1;
    }

    /// Where the write of `range` to `node` reaches the disk: its own offset, or elsewhere if
    /// the plan misdirects it (a targeted misdirect only if the write overlaps a target).
    pub(crate) fn misdirected_offset(&mut self, node: NodeId, range: Range<u64>, plan: &Plan) -> u64 {
        let (shift, targeted) = match (plan.misdirect_sectors, plan.targeted_misdirect_sectors) {
            (Some(shift), _) => (shift, false),
            (None, Some(shift)) if self.write_hits_target(node, &range) => (shift, true),
            _ => return range.start,
        };
        let (offset, len) = (range.start, range.end - range.start);
        let sector = i64::from(self.options.sector_size_bytes);
        let target = offset as i64 + shift * sector;
        let disk_offset =
            if target >= 0 { target as u64 } else { offset + shift.unsigned_abs() * sector as u64 };
        // Without powersafe overwrite a tear of the misplaced write can hit whole sectors, so
        // the reported damage covers them.
        let sector = sector as u64;
        let widen = |range: Range<u64>| match self.options.powersafe_overwrite {
            true => range,
            false => range.start - range.start % sector..range.end.div_ceil(sector) * sector,
        };
        let intended = widen(offset..offset + len);
        let landed = widen(disk_offset..disk_offset + len);
        self.record(DamageKind::Misdirect, DamageRole::Intended, node, intended, targeted);
        self.record(DamageKind::Misdirect, DamageRole::Landed, node, landed, targeted);
        self.used(targeted);
        self.stats.misdirected_writes += 1;
        disk_offset
    }
}
