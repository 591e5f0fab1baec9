//! CRC32C of any stretch of a file in constant time, so that resynchronising after damage is
//! linear in the file size.
//!
//! Resynchronising tries every offset as the start of a block. Where a block's two lengths
//! agree its CRC must be checked, and a crafted file can make every few bytes such a
//! candidate, each claiming a block as long as the rest of the file: checking each by
//! hashing it would be quadratic. Instead the CRC of every prefix of the file is known at
//! checkpoints (one per [`CHECKPOINT_SPACING`] bytes, computed once, front to back, and
//! dropped behind the reader), and the CRC of a stretch follows from the CRCs of the two
//! prefixes that end where it starts and where it ends: `crc(A‖B) = crc(A)·x^(8|B|) ⊕ crc(B)`
//! in GF(2)[x] mod the CRC32C polynomial. That is zlib's `crc32_combine`, solved for `crc(B)`;
//! the `crc32c` crate offers only the combine itself, in zlib's old O(32² log n) form, too
//! slow to run at every candidate, so the two small GF(2) operations are written here (after
//! Mark Adler's `multmodp` and `x2nmodp` in zlib's crc32.c).

use std::collections::VecDeque;

/// Bytes between prefix checkpoints: a stretch costs at most twice this in hashing.
pub const CHECKPOINT_SPACING: usize = 64;

/// Stretch lengths whose operator is kept.
const SHIFT_CACHE: usize = 64;

/// The CRC32C polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a·b mod p`, bit-reflected.
fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// `x^(2^k) mod p` for k = 0..32.
fn x2n_table() -> [u32; 32] {
    let mut table = [0u32; 32];
    let mut p = 1u32 << 30; // x^1
    table[0] = p;
    for entry in table.iter_mut().skip(1) {
        p = mult_mod_p(p, p);
        *entry = p;
    }
    table
}

/// `x^(8·len) mod p`: the operator that appends `len` bytes' worth of zero bits.
fn x8n_mod_p(table: &[u32; 32], mut len: u64) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut k = 3usize;
    while len != 0 {
        if len & 1 != 0 {
            p = mult_mod_p(table[k & 31], p);
        }
        len >>= 1;
        k += 1;
    }
    p
}

/// What computing CRCs cost, for tests and benchmarks that check the work stays linear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrcWork {
    /// Bytes fed to the CRC function.
    pub bytes_hashed: u64,
    /// Stretches whose CRC was asked for.
    pub ranges: u64,
}

/// Prefix CRCs of `data` from `base`, at checkpoints, extended forward on demand.
pub struct RangeCrc<'a> {
    data: &'a [u8],
    table: [u32; 32],
    /// Offset of the first checkpoint kept.
    first: usize,
    /// `crc32c(data[base..first + i·SPACING])` for each i.
    checkpoints: VecDeque<u32>,
    /// Recent stretch lengths and their operators, by length: candidates repeat a few
    /// lengths (a repeated pattern makes one per alignment), and computing an operator costs
    /// up to 30 multiplications.
    shifts: [(u64, u32); SHIFT_CACHE],
    work: CrcWork,
}

impl<'a> RangeCrc<'a> {
    pub fn new(data: &'a [u8], base: usize) -> Self {
        let mut checkpoints = VecDeque::new();
        checkpoints.push_back(crc32c::crc32c(&[]));
        Self {
            data,
            table: x2n_table(),
            first: base.min(data.len()),
            checkpoints,
            shifts: [(u64::MAX, 0); SHIFT_CACHE],
            work: CrcWork::default(),
        }
    }

    pub fn work(&self) -> CrcWork {
        self.work
    }

    /// Forgets checkpoints before `offset`: nothing before it will be asked for again. Keeps
    /// memory to the longest block a candidate can claim, not the file.
    pub fn forget_before(&mut self, offset: usize) {
        while self.checkpoints.len() > 1 && self.first + CHECKPOINT_SPACING <= offset {
            self.checkpoints.pop_front();
            self.first += CHECKPOINT_SPACING;
        }
    }

    /// The CRC of `data[base..offset]`, `base` being where the first checkpoint was when the
    /// object was made (dropping checkpoints keeps it: all prefixes share it).
    fn prefix(&mut self, offset: usize) -> u32 {
        debug_assert!(offset >= self.first && offset <= self.data.len());
        let wanted = (offset - self.first) / CHECKPOINT_SPACING;
        while self.checkpoints.len() <= wanted {
            let from = self.first + (self.checkpoints.len() - 1) * CHECKPOINT_SPACING;
            let last = *self.checkpoints.back().unwrap_or(&0);
            let next = crc32c::crc32c_append(last, &self.data[from..from + CHECKPOINT_SPACING]);
            self.work.bytes_hashed += CHECKPOINT_SPACING as u64;
            self.checkpoints.push_back(next);
        }
        let at = self.first + wanted * CHECKPOINT_SPACING;
        let rest = &self.data[at..offset];
        self.work.bytes_hashed += rest.len() as u64;
        crc32c::crc32c_append(self.checkpoints[wanted], rest)
    }

    /// `crc32c(data[start..end])`, for `first <= start <= end <= data.len()`.
    pub fn crc(&mut self, start: usize, end: usize) -> u32 {
        self.work.ranges += 1;
        let crc_a = self.prefix(start);
        let crc_ab = self.prefix(end);
        let len = (end - start) as u64;
        let slot = &mut self.shifts[(len as usize ^ (len >> 7) as usize) % SHIFT_CACHE];
        let shift = if slot.0 == len {
            slot.1
        } else {
            let shift = x8n_mod_p(&self.table, len);
            *slot = (len, shift);
            shift
        };
        crc_ab ^ mult_mod_p(shift, crc_a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_of_a_stretch_from_two_prefixes_is_the_crc_of_the_stretch() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut from_start = RangeCrc::new(&data, 0);
        for (a, b) in [
            (0, 0),
            (0, 1),
            (3, 4),
            (7, 900),
            (64, 128),
            (100, 5000),
            (4999, 5000),
        ] {
            assert_eq!(
                from_start.crc(a, b),
                crc32c::crc32c(&data[a..b]),
                "{a}..{b}"
            );
        }
        let mut ranges = RangeCrc::new(&data, 8);
        for (a, b) in [
            (8, 8),
            (8, 9),
            (10, 4000),
            (70, 71),
            (2000, 5000),
            (4990, 5000),
        ] {
            assert_eq!(ranges.crc(a, b), crc32c::crc32c(&data[a..b]), "{a}..{b}");
        }
        ranges.forget_before(3000);
        assert_eq!(ranges.crc(3001, 4999), crc32c::crc32c(&data[3001..4999]));
    }
}
