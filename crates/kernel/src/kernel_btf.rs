//! Offsets of kernel struct fields, read from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`).
//!
//! The kernel programs are written in Rust, which has no CO-RE field relocations: to follow
//! `task->files->fdt->fd[fd]->f_inode` they need the field offsets of this kernel, which the
//! collector looks up here and passes in the CONFIG map.
//!
//! Hand-written on purpose, and small: it only walks type records to find a struct by name and
//! a member's byte offset (through anonymous struct and union members). aya-obj parses BTF but
//! keeps its type records' fields private; btf-rs is LGPL-licensed, which this Apache-2.0
//! project does not link. The BTF format is described in the kernel's
//! Documentation/bpf/btf.rst; every read here is bounds-checked, so a malformed file gives an
//! error, never a panic.

use std::collections::HashMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// One struct or union: its members as (name offset, type id, bit offset).
struct Composite {
    members: Vec<(u32, u32, u32)>,
}

/// The struct and union types of a BTF blob, enough to find member offsets.
pub struct KernelBtf {
    strings: Vec<u8>,
    /// Type id → composite, for struct and union types only.
    composites: HashMap<u32, Composite>,
    /// Struct name → type id (the first of that name).
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("BTF ends inside a record at byte {at}"))
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<Self, String> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")
            .map_err(|e| format!("cannot read /sys/kernel/btf/vmlinux: {e}"))?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let magic = data
            .get(0..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or("BTF shorter than its header")?;
        if magic != BTF_MAGIC {
            return Err("not little-endian BTF (bad magic)".into());
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_start = hdr_len + type_off;
        let types = data
            .get(types_start..types_start + type_len)
            .ok_or("BTF type section out of bounds")?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or("BTF string section out of bounds")?
            .to_vec();
        let mut btf = KernelBtf {
            strings,
            composites: HashMap::new(),
            structs_by_name: HashMap::new(),
        };
        let mut at = 0;
        let mut id = 1u32;
        while at < types.len() {
            let name_off = u32_at(types, at)?;
            let info = u32_at(types, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let bitfield_offsets = info >> 31 != 0;
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,                                // int, var, decl tag
                3 => 12,                                         // array
                KIND_STRUCT | KIND_UNION | 15 | 19 => 12 * vlen, // members, datasec, enum64
                6 | 13 => 8 * vlen,                              // enum, func proto
                2 | 7..=12 | 16 | 18 => 0, // ptr, fwd, typedef, modifiers, func, float, type tag
                other => return Err(format!("unknown BTF kind {other} (type {id})")),
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let base = at + 12 * m;
                    let offset = u32_at(types, base + 8)?;
                    let bits = if bitfield_offsets {
                        offset & 0xff_ffff
                    } else {
                        offset
                    };
                    members.push((u32_at(types, base)?, u32_at(types, base + 4)?, bits));
                }
                if kind == KIND_STRUCT && name_off != 0 {
                    let name = btf.string(name_off)?.to_string();
                    btf.structs_by_name.entry(name).or_insert(id);
                }
                btf.composites.insert(id, Composite { members });
            }
            at += extra;
            id += 1;
        }
        Ok(btf)
    }

    fn string(&self, offset: u32) -> Result<&str, String> {
        let rest = self
            .strings
            .get(offset as usize..)
            .ok_or("BTF string offset out of bounds")?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).map_err(|_| "BTF string is not UTF-8".to_string())
    }

    /// Byte offset of `member` in `struct name`, looking into anonymous struct and union
    /// members (where the kernel keeps many fields).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u64, String> {
        let id = self
            .structs_by_name
            .get(name)
            .ok_or_else(|| format!("struct {name} is not in the kernel's BTF"))?;
        self.find_member(*id, member, 0)
            .ok_or_else(|| format!("struct {name} has no member {member} in the kernel's BTF"))
    }

    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<u64> {
        let composite = self.composites.get(&id)?;
        if depth > 8 {
            return None;
        }
        for &(name_off, type_id, bits) in &composite.members {
            if name_off == 0 {
                if let Some(inner) = self.find_member(type_id, member, depth + 1) {
                    return Some(bits as u64 / 8 + inner);
                }
            } else if self.string(name_off).ok() == Some(member) {
                return Some(bits as u64 / 8);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: `struct outer { int a; union { int b; long c; }; }` where the
    /// union sits at byte 8.
    fn blob() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0c\0int\0".to_vec();
        let mut types = Vec::new();
        let mut put = |v: u32| types.extend_from_slice(&v.to_le_bytes());
        // 1: int
        put(15);
        put(1 << 24);
        put(4);
        put(32);
        // 2: anonymous union { b @0, c @0 }
        put(0);
        put((KIND_UNION << 24) | 2);
        put(8);
        put(9);
        put(1);
        put(0);
        put(11);
        put(1);
        put(0);
        // 3: struct outer { a @0, <anon> @64 bits }
        put(1);
        put((KIND_STRUCT << 24) | 2);
        put(16);
        put(7);
        put(1);
        put(0);
        put(0);
        put(2);
        put(64);
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_members_directly_and_through_anonymous_unions() {
        let btf = KernelBtf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        assert!(btf.member_offset("outer", "missing").is_err());
        assert!(btf.member_offset("inner", "a").is_err());
    }

    #[test]
    fn truncated_blobs_are_errors_not_panics() {
        let full = blob();
        for cut in 0..full.len() {
            let _ = KernelBtf::parse(&full[..cut]);
        }
    }

    #[test]
    fn the_running_kernel_has_the_fields_output_tracking_needs() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return;
        }
        let btf = KernelBtf::from_sys_fs().unwrap();
        for (name, member) in crate::output_tracking::KERNEL_FIELDS {
            btf.member_offset(name, member).unwrap();
        }
    }
}
