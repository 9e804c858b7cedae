// Package segment is the Tier 0 segment file: the append-only file that
// holds one stream's records between ingest and sealing. It provides the
// writer with group commit (Writer), the reader (Reader), crash recovery of
// the active segment (Recover), the full check of a sealed segment (Verify)
// and the current.sealed mark of a stream directory.
//
// # Files
//
// A stream directory holds <segment_id:020>.seg files (FileName,
// ParseFileName) and current.sealed. Segment ids rise; at most the highest
// segment is unsealed (active).
//
// Create writes a new segment's header to <segment_id:020>.seg.tmp
// (TempFileName), fsyncs it, renames it to its .seg name and fsyncs the
// directory, so every .seg file has a complete, durable header. A .seg.tmp
// file is the remnant of a Create a crash interrupted: ListSegments does
// not list it, Recover deletes it (RemoveTempFiles), and Create of the same
// id overwrites it.
//
// # Segment format (AOF2SEGM, version 2)
//
// All integers are little-endian. A segment is a header, zero or more
// records, and, once sealed, a footer:
//
//	header | record | record | ... | footer
//
// Header, 64 bytes:
//
//	off size field
//	  0    8 magic "AOF2SEGM"
//	  8    2 version u16 = 2
//	 10    2 header length u16 = 64
//	 12    4 reserved, zero
//	 16    8 stream id u64
//	 24    8 segment id u64
//	 32    8 base logical offset u64 (offset of the first record)
//	 40    8 creation time i64, Unix milliseconds
//	 48    8 ext id u64 (first record's JetStream sequence if known, else 0)
//	 56    4 reserved, zero
//	 60    4 CRC-32C (Castagnoli) of bytes 0-59
//
// Record, 36-byte header then the payload:
//
//	off size field
//	  0    4 payload_len u32 (at most MaxPayloadBytes)
//	  4    4 crc u32: CRC-32C of bytes 8 to the end of the payload
//	         (payload_len is covered by choosing that range)
//	  8    8 logical_offset u64 (base offset + record index; contiguous)
//	 16    8 append_ts_ms u64 (Unix milliseconds, as an i64)
//	 24    8 ext_id u64 (JetStream stream sequence)
//	 32    4 flags u32 (stored verbatim)
//	 36    n payload
//
// The crc covers the length and the offset, so a record whose header is
// damaged, or zeros where a record should be, never pass as valid.
//
// Footer, 96 bytes, written once at seal directly after the last record:
//
//	off size field
//	  0    8 magic "AOF2FOOT"
//	  8    8 record_count u64
//	 16    8 durable_bytes u64 = header + records = the footer's own offset
//	 24    8 crc64 u64: CRC-64/NVME of bytes [0, durable_bytes), that is of
//	         the header and every record
//	 32    8 first ext id u64
//	 40    8 last ext id u64
//	 48    8 first logical offset u64
//	 56    8 last logical offset u64 (with no records both offsets are the
//	         base offset)
//	 64    4 flags u32: 1 sealed, 2 compacted, 4 partial
//	 68    4 footer length u32 = 96
//	 72   12 reserved, zero
//	 84    4 CRC-32C of bytes 0-83
//	 88    8 trailing magic "AOF2SEND"
//
// A reader finds the footer from the end of the file: the last 96 bytes are
// a footer when both magics match, the CRC-32C holds and durable_bytes
// equals file size - 96. CRC-64/NVME is crc64.MakeTable(0x9a6c9329ac4bc9b5)
// (check value of "123456789": 0xae8b14860a799888).
//
// # current.sealed (version 1)
//
// Names the highest sealed segment of the directory so a restart knows
// where the active tail starts without opening sealed segments. It is
// replaced atomically (temp file, fsync, rename, fsync dir). 96 bytes:
//
//	off size field
//	  0    8 magic "AOF2CSEL"
//	  8    2 version u16 = 1
//	 10    2 length u16 = 96
//	 12    4 reserved, zero
//	 16    8 segment id u64
//	 24   60 the segment's footer fields record_count, durable_bytes,
//	         crc64, first/last ext id, first/last logical offset (u64 each)
//	         and flags (u32); all zero when written without a footer
//	 84    8 reserved, zero
//	 92    4 CRC-32C of bytes 0-91
//
// # Durability and recovery
//
// Writer.Append only encodes; Writer.Sync writes and fsyncs and then moves
// the durable watermark (DurableOffset, DurableBytes). The fsync runs
// outside the lock Append takes, so appends continue during it; the
// watermark moves only to the bytes written before that fsync started. A failed write or
// fsync is Flush backpressure and poisons the writer; the caller reopens the
// segment with Recover.
//
// Seal runs in this order: sync the records, write the footer, fsync it,
// then advance current.sealed (temp file, fsync, rename, directory fsync).
// So current.sealed never names a segment whose footer is not durable, and
// a caller must never cut a segment back once Writer.Sealed reports its
// footer durable. A crash before the footer's fsync leaves at most a torn
// footer, which Recover cuts like any torn tail; a crash after it leaves a
// valid footer, and Recover completes current.sealed and returns
// ErrSealed. Reseal repairs the one state older versions could leave
// against that order: current.sealed naming a segment without a footer.
//
// Recover keeps the longest valid record prefix and truncates the tail after
// it when nothing valid follows (a torn write, a torn footer, zero fill). A
// damaged record followed by a valid record is corruption
// (*CorruptionError), never truncated silently. Note that a crash can also
// persist pages of an unsynced group commit out of order; a hole inside such
// unacknowledged data followed by valid records is reported the same way,
// so an operator decides rather than the store guessing.
package segment
