//! Reading a shard: [`Shard::open`] validates everything that bounds a later read (magic,
//! version, checksums of header, index and footer, every offset, length and geometry), so
//! that reading a record afterwards can fail only on a blob's own checksum or content.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use super::layout::{
    BlobEntry, Footer, Header, RecordEntry, END_MAGIC, FIRST_CHUNK_BLOB, FORMAT_VERSION, MAGIC, MAX_META_LEN,
    MAX_PARAMS_LEN,
};
use crate::error::{FormatError, Result};
use crate::field::frames::{ChunkDecoder, FrameShape};
use crate::field::meta::RecordMeta;
use crate::field::spectrogram;
use crate::params::PackParams;
use crate::storage::RemoteFile;

/// Where a shard's bytes are: a memory-mapped local file, or an object read by ranges.
enum Source {
    Mapped(Mmap),
    Remote(RemoteFile),
}

/// Bytes of a shard: borrowed from the map, or fetched from an object store.
pub enum Blob<'a> {
    /// A slice of the memory-mapped file.
    Mapped(&'a [u8]),
    /// Bytes fetched (or read-ahead) from an object store.
    Fetched(Bytes),
}

impl std::ops::Deref for Blob<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Mapped(b) => b,
            Blob::Fetched(b) => b,
        }
    }
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Mapped(m) => m.len() as u64,
            Source::Remote(r) => r.len(),
        }
    }

    /// Bytes `offset..offset + len`, which the caller has checked lie in the file.
    fn read(&self, path: &Path, offset: u64, len: u64) -> Result<Blob<'_>> {
        match self {
            Source::Mapped(m) => Ok(Blob::Mapped(&m[offset as usize..(offset + len) as usize])),
            Source::Remote(r) => r
                .read(offset, len)
                .map(Blob::Fetched)
                .map_err(|e| FormatError::Storage {
                    path: path.to_path_buf(),
                    source: e,
                }),
        }
    }
}

/// A validated shard, memory-mapped or in an object store.
pub struct Shard {
    /// The file's path, or the object's URL.
    path: PathBuf,
    source: Source,
    params: PackParams,
    records: Vec<RecordEntry>,
    blobs: Vec<BlobEntry>,
}

impl Shard {
    /// Opens and validates a shard.
    ///
    /// The file is memory-mapped. Shards are immutable once renamed into place; gdt never
    /// writes to a finished shard, and nothing else may either: a mapped file that changes or
    /// shrinks under a reader can crash it (SIGBUS).
    pub fn open(path: &Path) -> Result<Shard> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        let len = file.metadata().map_err(FormatError::io(path))?.len();
        if len < (Header::LEN + Footer::LEN) as u64 {
            return Err(FormatError::malformed(
                path,
                format!("{len} bytes is too short for a shard"),
            ));
        }
        // SAFETY: shards are immutable once complete (see above); the map is read-only.
        let map = unsafe { Mmap::map(&file) }.map_err(FormatError::io(path))?;
        Shard::parse(path.to_path_buf(), Source::Mapped(map))
    }

    /// Opens and validates a shard in an object store: its header, footer and index are
    /// read (three ranged requests); records are read by ranges as they are needed.
    pub fn open_remote(file: RemoteFile) -> Result<Shard> {
        let path = PathBuf::from(file.url());
        if file.len() < (Header::LEN + Footer::LEN) as u64 {
            return Err(FormatError::malformed(
                &path,
                format!("{} bytes is too short for a shard", file.len()),
            ));
        }
        Shard::parse(path, Source::Remote(file))
    }

    /// Validates everything that bounds a later read, from the header, footer and index.
    fn parse(path: PathBuf, source: Source) -> Result<Shard> {
        let path = path.as_path();
        let len = source.len();
        // Parameters take about 1 KiB: one small read has them (one request from a store),
        // and a longer header is read again whole.
        const FIRST_READ: usize = Header::LEN + 4096;
        let mut head = source.read(path, 0, len.min(FIRST_READ as u64))?;
        let header = Header::parse(&head);
        if &header.magic != MAGIC {
            return Err(FormatError::NotAShard {
                path: path.to_path_buf(),
                found: header.magic.to_vec(),
            });
        }
        if header.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                path: path.to_path_buf(),
                found: header.version,
                supported: FORMAT_VERSION,
            });
        }
        let params_len = header.params_len as usize;
        if params_len > MAX_PARAMS_LEN || (Header::LEN + params_len + Footer::LEN) as u64 > len {
            return Err(FormatError::malformed(
                path,
                format!("header claims {params_len} bytes of parameters"),
            ));
        }
        let header_end = Header::LEN + params_len;
        if header_end > head.len() {
            head = source.read(path, 0, header_end as u64)?;
        }
        let params_bytes = &head[Header::LEN..header_end];
        if header.expected_checksum(params_bytes) != header.checksum {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "header",
            });
        }
        let params: PackParams =
            serde_json::from_slice(params_bytes).map_err(|source| FormatError::Json {
                path: path.to_path_buf(),
                what: "header parameters",
                source,
            })?;
        params
            .validate()
            .map_err(|e| FormatError::malformed(path, format!("header parameters: {e}")))?;

        let footer = Footer::parse(&source.read(path, len - Footer::LEN as u64, Footer::LEN as u64)?);
        if &footer.end_magic != END_MAGIC {
            return Err(FormatError::malformed(
                path,
                "no footer (truncated or still being written)",
            ));
        }
        if footer.expected_checksum() != footer.checksum {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "footer",
            });
        }
        if footer.file_len != len {
            return Err(FormatError::malformed(
                path,
                format!("footer says {} bytes, file has {len}", footer.file_len),
            ));
        }
        let (index_offset, index_len) = (footer.index_offset, footer.index_len());
        // Checked: a crafted offset near u64::MAX must not wrap around to a plausible sum.
        let index_end = index_offset.checked_add(index_len + Footer::LEN as u64);
        if index_offset < header_end as u64 || index_end != Some(len) {
            return Err(FormatError::malformed(
                path,
                "index does not fit between header and footer",
            ));
        }
        let index = source.read(path, index_offset, index_len)?;
        if xxh3_64(&index) != footer.index_checksum {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "index",
            });
        }
        let (entries, blob_entries) = index.split_at(footer.record_count as usize * RecordEntry::LEN);
        let mut records = Vec::with_capacity(footer.record_count as usize);
        for (i, e) in entries.chunks_exact(RecordEntry::LEN).enumerate() {
            records.push(RecordEntry::parse(e).ok_or_else(|| FormatError::Record {
                path: path.to_path_buf(),
                record: i,
                what: "reserved field of its index entry is not 0".into(),
            })?);
        }
        let blobs: Vec<BlobEntry> = blob_entries
            .chunks_exact(BlobEntry::LEN)
            .map(BlobEntry::parse)
            .collect();
        drop((head, index));
        let shard = Shard {
            path: path.to_path_buf(),
            source,
            params,
            records,
            blobs,
        };
        shard.validate_index(header_end as u64, index_offset)?;
        Ok(shard)
    }

    /// Checks every index entry against the header's geometry and the file's regions, so
    /// that no later read can go out of bounds or allocate more than the format allows.
    fn validate_index(&self, header_end: u64, index_offset: u64) -> Result<()> {
        let p = &self.params;
        let bad = |record: usize, what: String| FormatError::Record {
            path: self.path.clone(),
            record,
            what,
        };
        let mut next_blob = 0u64;
        let mut next_offset = header_end;
        for (i, r) in self.records.iter().enumerate() {
            if r.width == 0 || r.height == 0 || r.width.max(r.height) > p.max_long_side.max(p.short_side) {
                return Err(bad(
                    i,
                    format!(
                        "frame size {}x{} is outside the shard's geometry",
                        r.width, r.height
                    ),
                ));
            }
            if r.frames == 0 || r.frames as u64 > p.max_frames() {
                return Err(bad(
                    i,
                    format!("{} frames is outside 1..={}", r.frames, p.max_frames()),
                ));
            }
            if r.mels != p.mels || r.mel_frames as u64 > p.max_spectrogram_frames() {
                return Err(bad(
                    i,
                    format!(
                        "spectrogram {}x{} is outside the shard's geometry",
                        r.mels, r.mel_frames
                    ),
                ));
            }
            let chunks = (r.frames as u64).div_ceil(p.chunk_frames as u64);
            if r.first_blob as u64 != next_blob || r.blob_count as u64 != FIRST_CHUNK_BLOB as u64 + chunks {
                return Err(bad(
                    i,
                    format!("blob range {}+{} is inconsistent", r.first_blob, r.blob_count),
                ));
            }
            next_blob += r.blob_count as u64;
            if next_blob > self.blobs.len() as u64 {
                return Err(bad(i, "blob range runs past the index".into()));
            }
            let frame_bytes = 3 * r.width as u64 * r.height as u64;
            for (k, blob) in self.blobs[r.first_blob as usize..next_blob as usize]
                .iter()
                .enumerate()
            {
                let end = blob.offset.checked_add(blob.len as u64);
                if blob.offset < header_end || end.is_none_or(|e| e > index_offset) {
                    return Err(bad(i, format!("blob {k} lies outside the records region")));
                }
                // Blobs fill the region back to back, in index order: no byte is unaccounted
                // for (and so unchecked).
                if blob.offset != next_offset {
                    return Err(bad(
                        i,
                        format!(
                            "blob {k} starts at {}, the previous blob ends at {next_offset}",
                            blob.offset
                        ),
                    ));
                }
                next_offset += blob.len as u64;
                let expected = match k {
                    0 => blob.len as u64,
                    1 => r.mels as u64 * r.mel_frames as u64 * 2,
                    _ => {
                        let first = (k - FIRST_CHUNK_BLOB) as u64 * p.chunk_frames as u64;
                        (r.frames as u64 - first).min(p.chunk_frames as u64) * frame_bytes
                    }
                };
                if blob.raw_len as u64 != expected || (k == 0 && blob.len > MAX_META_LEN) {
                    return Err(bad(
                        i,
                        format!(
                            "blob {k} claims {} bytes decoded, geometry says {expected}",
                            blob.raw_len
                        ),
                    ));
                }
            }
        }
        if next_blob != self.blobs.len() as u64 {
            return Err(FormatError::malformed(
                &self.path,
                "index has blobs that belong to no record",
            ));
        }
        if next_offset != index_offset {
            return Err(FormatError::malformed(
                &self.path,
                format!("blobs end at {next_offset}, the index starts at {index_offset}"),
            ));
        }
        Ok(())
    }

    /// The shard's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parameters in its header.
    pub fn params(&self) -> &PackParams {
        &self.params
    }

    /// Records in the shard.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record's index entry.
    pub fn entries(&self) -> &[RecordEntry] {
        &self.records
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.source.len()
    }

    /// Asks for `ranges` (offset, length) to be brought close ahead of use: for a local file
    /// the kernel reads them into the page cache (`madvise(MADV_WILLNEED)`); for an object,
    /// requests for them start now. Ranges closer than 64 KiB are merged first (one request
    /// for a record's spectrogram and the chunks of its clips). A hint only: nothing is
    /// checked or returned, and what lies past the end is ignored.
    pub fn will_need(&self, ranges: &mut Vec<(u64, u64)>) {
        const GAP: u64 = 64 << 10;
        // Merged in place: the loader calls this per record and allocates nothing per batch.
        ranges.sort_unstable();
        let mut kept = 0usize;
        for i in 0..ranges.len() {
            let (offset, len) = ranges[i];
            match kept.checked_sub(1).map(|k| &mut ranges[k]) {
                Some((o, l)) if offset <= *o + *l + GAP => *l = (*l).max(offset + len - *o),
                _ => {
                    ranges[kept] = (offset, len);
                    kept += 1;
                }
            }
        }
        ranges.truncate(kept);
        let merged = &ranges[..];
        match &self.source {
            Source::Mapped(map) => {
                for &(offset, len) in merged {
                    let end = offset.saturating_add(len).min(map.len() as u64);
                    if offset < end {
                        let _ = map.advise_range(
                            memmap2::Advice::WillNeed,
                            offset as usize,
                            (end - offset) as usize,
                        );
                    }
                }
            }
            Source::Remote(file) => file.prefetch(merged),
        }
    }

    /// Whether the shard is read from an object store.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote(_))
    }

    /// Record `index` of this shard, for reading.
    pub fn record(&self, index: usize) -> Result<RecordView<'_>> {
        let entry = *self.records.get(index).ok_or_else(|| {
            FormatError::malformed(
                &self.path,
                format!("record {index} requested, shard has {}", self.records.len()),
            )
        })?;
        Ok(RecordView {
            shard: self,
            index,
            entry,
        })
    }

    /// Full integrity pass: checks every blob's checksum. Returns one line per damaged blob;
    /// an error only when the bytes cannot be read at all (an object store that fails).
    pub fn verify(&self) -> Result<Vec<Damage>> {
        let mut damage = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let blobs = &self.blobs[r.first_blob as usize..(r.first_blob + r.blob_count) as usize];
            if let (Source::Remote(file), Some(first), Some(last)) =
                (&self.source, blobs.first(), blobs.last())
            {
                // One request per record rather than one per blob.
                file.prefetch(&[(first.offset, last.offset + last.len as u64 - first.offset)]);
            }
            for (k, blob) in blobs.iter().enumerate() {
                if xxh3_64(&self.blob_bytes(blob)?) != blob.checksum {
                    damage.push(Damage {
                        record: i,
                        what: format!("{} checksum mismatch", blob_name(k)),
                    });
                }
            }
        }
        Ok(damage)
    }

    /// A blob's stored bytes. In bounds: `validate_index` checked every blob against the
    /// records region.
    fn blob_bytes(&self, blob: &BlobEntry) -> Result<Blob<'_>> {
        self.source.read(&self.path, blob.offset, blob.len as u64)
    }

    /// Drops fetched bytes of a blob that failed its checksum, so the next read fetches them
    /// again (a transfer damaged on the way rather than an object damaged in the store).
    fn refetch(&self, blob: &BlobEntry) {
        if let Source::Remote(file) = &self.source {
            file.forget(blob.offset, blob.len as u64);
        }
    }
}

fn blob_name(k: usize) -> String {
    match k {
        0 => "metadata".to_string(),
        1 => "spectrogram".to_string(),
        _ => format!("frame chunk {}", k - FIRST_CHUNK_BLOB),
    }
}

/// One damaged part of a shard, as `gdt verify` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The record within the shard.
    pub record: usize,
    /// Which blob, and what failed.
    pub what: String,
}

/// Read access to one record. Every blob is checked against its checksum before use.
pub struct RecordView<'a> {
    shard: &'a Shard,
    index: usize,
    entry: RecordEntry,
}

impl<'a> RecordView<'a> {
    /// Its index entry.
    pub fn entry(&self) -> &RecordEntry {
        &self.entry
    }

    fn err(&self, what: String) -> FormatError {
        FormatError::Record {
            path: self.shard.path.clone(),
            record: self.index,
            what,
        }
    }

    /// A blob's stored bytes (zero-copy from the map, or fetched), after checking its
    /// checksum. Fetched bytes that fail it are fetched once more before the blob is called
    /// damaged: what failed may have been the transfer.
    fn blob(&self, k: usize) -> Result<(Blob<'a>, BlobEntry)> {
        let blob = self.shard.blobs[self.entry.first_blob as usize + k];
        let mut bytes = self.shard.blob_bytes(&blob)?;
        if xxh3_64(&bytes) != blob.checksum && self.shard.is_remote() {
            self.shard.refetch(&blob);
            bytes = self.shard.blob_bytes(&blob)?;
        }
        if xxh3_64(&bytes) != blob.checksum {
            return Err(self.err(format!("{} checksum mismatch", blob_name(k))));
        }
        Ok((bytes, blob))
    }

    /// Where blob `k` of this record (0 metadata, 1 spectrogram, 2.. frame chunks) lies in
    /// the file: (offset, length). For tools and tests that need to point at bytes.
    pub fn blob_location(&self, k: usize) -> (u64, u32) {
        let blob =
            self.shard.blobs[self.entry.first_blob as usize + k.min(self.entry.blob_count as usize - 1)];
        (blob.offset, blob.len)
    }

    /// The file ranges (offset, length) that frames `start..start + count` are decoded from:
    /// the chunks holding them (what [`RecordView::read_frames`] reads).
    pub fn frame_ranges(&self, start: usize, count: usize) -> impl Iterator<Item = (u64, u32)> + '_ {
        let per_chunk = self.shard.params.chunk_frames as usize;
        let end = (start + count).min(self.entry.frames as usize);
        let chunks = if end > start {
            start / per_chunk..end.div_ceil(per_chunk)
        } else {
            0..0
        };
        chunks.map(|c| self.blob_location(FIRST_CHUNK_BLOB + c))
    }

    /// The file range (offset, length) of the spectrogram.
    pub fn spectrogram_range(&self) -> (u64, u32) {
        self.blob_location(1)
    }

    /// The shard it is in.
    pub fn shard(&self) -> &'a Shard {
        self.shard
    }

    /// Its metadata, after the checksum.
    pub fn meta(&self) -> Result<RecordMeta> {
        let (bytes, _) = self.blob(0)?;
        serde_json::from_slice(&bytes).map_err(|e| self.err(format!("metadata: {e}")))
    }

    /// Frame chunks it holds.
    pub fn chunk_count(&self) -> usize {
        self.entry.blob_count as usize - FIRST_CHUNK_BLOB
    }

    /// A frame chunk's compressed bytes (zero-copy) and its decoded length.
    pub fn chunk(&self, c: usize) -> Result<(Blob<'a>, usize)> {
        if c >= self.chunk_count() {
            return Err(self.err(format!("chunk {c} requested, record has {}", self.chunk_count())));
        }
        let (bytes, blob) = self.blob(FIRST_CHUNK_BLOB + c)?;
        Ok((bytes, blob.raw_len as usize))
    }

    /// The size of its stored frames.
    pub fn shape(&self) -> FrameShape {
        FrameShape {
            width: self.entry.width,
            height: self.entry.height,
        }
    }

    /// Bytes of one stored frame.
    pub fn frame_bytes(&self) -> usize {
        self.shape().bytes()
    }

    /// Decodes frames `start..start + count` into `out` (planar RGB, frame after frame),
    /// decompressing only the chunks they touch.
    pub fn read_frames(
        &self,
        decoder: &mut ChunkDecoder,
        start: usize,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let total = self.entry.frames as usize;
        if start.checked_add(count).is_none_or(|end| end > total) {
            return Err(self.err(format!(
                "frames {start}..{} requested, record has {total}",
                start + count
            )));
        }
        let fb = self.frame_bytes();
        let per_chunk = self.shard.params.chunk_frames as usize;
        out.clear();
        out.reserve(count * fb);
        // The decoder's own buffer, borrowed for the call: no allocation once it is grown.
        let mut buf = std::mem::take(&mut decoder.scratch);
        let mut c = start / per_chunk;
        let result = (|| {
            while c * per_chunk < start + count {
                let (bytes, raw_len) = self.chunk(c)?;
                buf.resize(raw_len, 0);
                decoder
                    .decode(&bytes, self.shape(), &self.shard.params.codec, &mut buf)
                    .map_err(|e| self.err(format!("frame chunk {c}: {e}")))?;
                let from = start.max(c * per_chunk) - c * per_chunk;
                let to = (start + count).min((c + 1) * per_chunk) - c * per_chunk;
                out.extend_from_slice(&buf[from * fb..to * fb]);
                c += 1;
            }
            Ok(())
        })();
        decoder.scratch = buf;
        result
    }

    /// Decodes the whole spectrogram into `out` (row-major `[mels][mel_frames]`), reusing
    /// the decoder's zstd context and buffers.
    pub fn spectrogram_into(&self, decoder: &mut ChunkDecoder, out: &mut Vec<f32>) -> Result<()> {
        let (bytes, blob) = self.blob(1)?;
        out.resize(blob.raw_len as usize / 2, 0.0);
        let mut raw = std::mem::take(&mut decoder.scratch);
        let result = spectrogram::decode_with(&mut decoder.zstd, &mut raw, &bytes, out)
            .map_err(|e| self.err(format!("spectrogram: {e}")));
        decoder.scratch = raw;
        result
    }

    /// The whole spectrogram, row-major `[mels][mel_frames]`.
    pub fn spectrogram(&self) -> Result<Vec<f32>> {
        let (bytes, blob) = self.blob(1)?;
        let mut out = vec![0f32; blob.raw_len as usize / 2];
        spectrogram::decode(&bytes, &mut out).map_err(|e| self.err(format!("spectrogram: {e}")))?;
        Ok(out)
    }
}
