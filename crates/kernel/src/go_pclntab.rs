//! A bounded reader of a Go executable's function table (`pclntab`), which `-ldflags='-s -w'`
//! keeps: the Go runtime needs it for stack traces and garbage collection, so it is in every
//! Go binary, stripped or not.
//!
//! Written here rather than taken from a crate: `object` and `gimli` do not read it, and the
//! crates that do are reverse-engineering tool kits (symbol recovery for disassemblers) whose
//! dependency trees dwarf the ~150 lines needed to list function names and entry addresses.
//! The input is a file of any origin, possibly hostile, so every read is bounds-checked
//! (`get`, checked arithmetic), the function count is capped by what the table can hold, and
//! a name is at most [`MAX_NAME`] bytes. Nothing here panics on bad input: it returns
//! [`PclntabError`].
//!
//! Layouts understood, by the header's magic number (Go's `runtime/symtab.go`):
//! - `0xfffffffa`: Go 1.16 and 1.17. functab entries are (entry address, func offset) as
//!   pointers; `_func` starts with the entry address, then a name offset.
//! - `0xfffffff0`: Go 1.18 and 1.19; `0xfffffff1`: Go 1.20 and later. The header adds
//!   `textStart`; functab entries are two `u32` (entry offset from `textStart`, func offset);
//!   `_func` starts with the entry offset, then a name offset.
//!
//! Older layouts (Go 1.2 to 1.15) are recognised and reported: those Go versions pass
//! arguments on the stack, which the probes do not read.

/// Longest function name read; longer ones do not match anything looked for.
const MAX_NAME: usize = 1024;

/// Go 1.2 – 1.15.
pub const MAGIC_GO12: u32 = 0xffff_fffb;
/// Go 1.16 – 1.17.
pub const MAGIC_GO116: u32 = 0xffff_fffa;
/// Go 1.18 – 1.19.
pub const MAGIC_GO118: u32 = 0xffff_fff0;
/// Go 1.20 and later.
pub const MAGIC_GO120: u32 = 0xffff_fff1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclntabError {
    #[error("the function table is cut short ({0})")]
    Truncated(&'static str),
    #[error("unknown function table magic {0:#x}")]
    UnknownMagic(u32),
    #[error("the function table is for Go 1.2 to 1.15 (arguments on the stack): not supported")]
    TooOld,
    #[error("the function table is not for a 64-bit little-endian target (pointer size {0})")]
    NotSixtyFourBit(u8),
    #[error("the function table is inconsistent ({0})")]
    Inconsistent(&'static str),
}

/// A function found in the table: its entry address and where it ends (the next function's
/// entry), both virtual addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    pub name: String,
    pub entry: u64,
    pub end: u64,
}

/// A parsed header over the table's bytes.
pub struct Pclntab<'a> {
    data: &'a [u8],
    pub magic: u32,
    nfunc: usize,
    /// 1.18+: base of the entry offsets.
    text_start: u64,
    funcname_offset: usize,
    pcln_offset: usize,
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn read_usize(data: &[u8], at: usize, what: &'static str) -> Result<usize, PclntabError> {
    read_u64(data, at)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(PclntabError::Truncated(what))
}

impl<'a> Pclntab<'a> {
    /// Whether `data` starts like a function table of any Go version (the header check used
    /// to find the table when no section names it).
    pub fn looks_like_header(data: &[u8]) -> bool {
        let Some(magic) = read_u32(data, 0) else {
            return false;
        };
        matches!(magic, MAGIC_GO12 | MAGIC_GO116 | MAGIC_GO118 | MAGIC_GO120)
            && data.get(4..6) == Some(&[0, 0])
            && matches!(data.get(6), Some(1 | 2 | 4))
            && matches!(data.get(7), Some(4 | 8))
    }

    /// Parses the header. `text_section_address` stands in for `textStart` when the header
    /// leaves it to a relocation (position-independent builds).
    pub fn parse(data: &'a [u8], text_section_address: u64) -> Result<Self, PclntabError> {
        let magic = read_u32(data, 0).ok_or(PclntabError::Truncated("magic"))?;
        match magic {
            MAGIC_GO116 | MAGIC_GO118 | MAGIC_GO120 => {}
            MAGIC_GO12 => return Err(PclntabError::TooOld),
            other => return Err(PclntabError::UnknownMagic(other)),
        }
        if !Self::looks_like_header(data) {
            return Err(PclntabError::Inconsistent("header padding or sizes"));
        }
        let ptr_size = data[7];
        if ptr_size != 8 {
            return Err(PclntabError::NotSixtyFourBit(ptr_size));
        }
        let nfunc = read_usize(data, 8, "function count")?;
        // Fields after nfunc and nfiles, one pointer each.
        let field = |index: usize, what| read_usize(data, 8 + 8 * index, what);
        let (text_start, funcname_offset, pcln_offset) = if magic == MAGIC_GO116 {
            (0, field(2, "name table offset")?, field(6, "pcln offset")?)
        } else {
            let text_start =
                read_u64(data, 8 + 8 * 2).ok_or(PclntabError::Truncated("textStart"))?;
            (
                if text_start == 0 {
                    text_section_address
                } else {
                    text_start
                },
                field(3, "name table offset")?,
                field(7, "pcln offset")?,
            )
        };
        if funcname_offset >= data.len() || pcln_offset >= data.len() {
            return Err(PclntabError::Inconsistent("table offsets beyond the table"));
        }
        let entry_size = if magic == MAGIC_GO116 { 16 } else { 8 };
        // nfunc + 1 entries (the last one marks the end of the text) must fit.
        let room = (data.len() - pcln_offset) / entry_size;
        if nfunc == 0 || nfunc >= room {
            return Err(PclntabError::Inconsistent("function count"));
        }
        Ok(Pclntab {
            data,
            magic,
            nfunc,
            text_start,
            funcname_offset,
            pcln_offset,
        })
    }

    #[cfg(test)]
    pub fn function_count(&self) -> usize {
        self.nfunc
    }

    /// Entry address and `_func` offset (from the pcln table) of functab entry `index`
    /// (`index == nfunc` is the end-of-text marker).
    fn functab_entry(&self, index: usize) -> Option<(u64, usize)> {
        if self.magic == MAGIC_GO116 {
            let at = self.pcln_offset.checked_add(index.checked_mul(16)?)?;
            let entry = read_u64(self.data, at)?;
            let func = usize::try_from(read_u64(self.data, at.checked_add(8)?)?).ok()?;
            Some((entry, func))
        } else {
            let at = self.pcln_offset.checked_add(index.checked_mul(8)?)?;
            let entry = self
                .text_start
                .checked_add(u64::from(read_u32(self.data, at)?))?;
            let func = read_u32(self.data, at.checked_add(4)?)? as usize;
            Some((entry, func))
        }
    }

    /// Name of the function whose `_func` is at `func_offset` in the pcln table.
    fn name_at(&self, func_offset: usize) -> Option<&'a [u8]> {
        let func = self.pcln_offset.checked_add(func_offset)?;
        // Go 1.16/1.17: entry is a pointer; later: a u32 entry offset. The name offset follows.
        let name_field = if self.magic == MAGIC_GO116 { 8 } else { 4 };
        let name_offset = read_u32(self.data, func.checked_add(name_field)?)? as i32;
        let start = self
            .funcname_offset
            .checked_add(usize::try_from(name_offset).ok()?)?;
        let rest = self.data.get(start..)?;
        let rest = &rest[..rest.len().min(MAX_NAME + 1)];
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    /// The functions with these names (each at most once), with their extents. Walks the
    /// whole table once.
    pub fn find(&self, names: &[&str]) -> Vec<GoFunction> {
        let mut found: Vec<GoFunction> = Vec::new();
        for index in 0..self.nfunc {
            let Some((entry, func)) = self.functab_entry(index) else {
                break;
            };
            let Some(name) = self.name_at(func) else {
                continue;
            };
            let Some(wanted) = names.iter().find(|n| n.as_bytes() == name) else {
                continue;
            };
            if found.iter().any(|f| f.name == *wanted) {
                continue;
            }
            let Some((end, _)) = self.functab_entry(index + 1) else {
                continue;
            };
            if end <= entry {
                continue;
            }
            found.push(GoFunction {
                name: (*wanted).to_string(),
                entry,
                end,
            });
            if found.len() == names.len() {
                break;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made Go 1.18-layout table with two functions, to check the layout arithmetic;
    /// the real binaries are exercised in `go_tls_targets`' tests.
    fn table() -> Vec<u8> {
        let mut t = vec![0u8; 0x100];
        t[0..4].copy_from_slice(&MAGIC_GO118.to_le_bytes());
        t[6] = 1;
        t[7] = 8;
        t[8..16].copy_from_slice(&2u64.to_le_bytes()); // nfunc
        t[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes()); // textStart
        t[32..40].copy_from_slice(&0x80u64.to_le_bytes()); // funcnameOffset
        t[64..72].copy_from_slice(&0xc0u64.to_le_bytes()); // pclnOffset
        t[0x80..0x86].copy_from_slice(b"main.a");
        t[0x87..0x8d].copy_from_slice(b"main.b");
        // functab at 0xc0: (0x0, func 0x20), (0x40, func 0x28), end marker 0x90.
        for (i, (entry, func)) in [(0u32, 0x20u32), (0x40, 0x28), (0x90, 0)]
            .iter()
            .enumerate()
        {
            t[0xc0 + 8 * i..0xc4 + 8 * i].copy_from_slice(&entry.to_le_bytes());
            t[0xc4 + 8 * i..0xc8 + 8 * i].copy_from_slice(&func.to_le_bytes());
        }
        // _func records: entryOff, nameOff.
        t[0xe4..0xe8].copy_from_slice(&0u32.to_le_bytes());
        t[0xec..0xf0].copy_from_slice(&7u32.to_le_bytes());
        t
    }

    #[test]
    fn finds_functions_and_their_extents() {
        let data = table();
        let tab = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(tab.function_count(), 2);
        assert_eq!(
            tab.find(&["main.b", "main.a"]),
            vec![
                GoFunction {
                    name: "main.a".into(),
                    entry: 0x40_1000,
                    end: 0x40_1040
                },
                GoFunction {
                    name: "main.b".into(),
                    entry: 0x40_1040,
                    end: 0x40_1090
                },
            ]
        );
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_bounded_result() {
        let data = table();
        for len in 0..data.len() {
            if let Ok(tab) = Pclntab::parse(&data[..len], 0) {
                assert!(tab.find(&["main.a", "main.b"]).len() <= 2);
            }
        }
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = data.clone();
                damaged[at] ^= flip;
                if let Ok(tab) = Pclntab::parse(&damaged, 0) {
                    for f in tab.find(&["main.a", "main.b"]) {
                        assert!(f.end > f.entry);
                    }
                }
            }
        }
    }

    #[test]
    fn old_layouts_and_other_data_are_refused() {
        let mut data = table();
        data[0..4].copy_from_slice(&MAGIC_GO12.to_le_bytes());
        assert_eq!(Pclntab::parse(&data, 0).err(), Some(PclntabError::TooOld));
        assert!(matches!(
            Pclntab::parse(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", 0),
            Err(PclntabError::UnknownMagic(_))
        ));
        let mut data = table();
        data[7] = 4;
        assert_eq!(
            Pclntab::parse(&data, 0).err(),
            Some(PclntabError::NotSixtyFourBit(4))
        );
    }
}
