// Package chunking cuts files into content-defined chunks for the backup
// repository, with the tensor boundaries of model files as forced cut
// points, so that a fine-tuned model that changes some tensors stores only
// those tensors again.
//
// # Model-aware chunking
//
// Boundaries reads the header of a safetensors file (the JSON table of
// data_offsets) or the protobuf framing of an ONNX ModelProto (the
// payloads of initializers' raw_data and packed numeric fields, also in
// node attributes and subgraphs) through an io.ReaderAt, never the tensor
// data, and returns where each tensor's bytes start and end. Everything is
// validated (header size cap, bounds, overflow, overlapping tensors,
// nesting depth); a file that fails gets no boundaries and an error
// wrapping ErrMalformed, and is chunked like any other file.
//
// The Chunker cuts at every boundary and runs content-defined chunking
// inside each segment from the segment's own start. A tensor's chunks
// therefore depend only on its bytes: an unchanged tensor keeps its chunks
// when a header grows and moves it, and a large tensor that changed only
// in part (new rows of an embedding) still shares its other chunks.
//
// # Library and sizes, by measurement
//
// FastCDC from github.com/PlakarKorp/go-cdc-chunkers (the frozen
// "fastcdc-v1.0.0" variant, so cut points never change between releases)
// was chosen over Rabin fingerprints from github.com/restic/chunker: on
// float32 weights in memory it chunks 1.6-1.7 GB per second of CPU time
// against 0.46-0.48 GB for Rabin, about 3.5x, at every average size from
// 256 KiB to 2 MiB. Chunking runs once per byte of every backup, so this
// is CPU the rest of the pipeline (hashing, compression, encryption) gets.
// Both dedup alike (below). bench/backup/cdcbench measures both.
//
// On a 2 GiB data set of safetensors and ONNX models whose fine-tune
// replaces 10% of the tensors (11% of the bytes) and moves all of them,
// model-aware chunking adds exactly the replaced bytes (1.000x) at every
// average size from 256 KiB to 2 MiB, while plain FastCDC adds 1.09x at
// 256 KiB, 1.15x at 512 KiB, 1.31x at 1 MiB and 1.59x at 2 MiB (restic's
// Rabin at its own 512 KiB/1 MiB/8 MiB: 1.31x). With tensor boundaries,
// smaller chunks buy nothing for whole-tensor changes and cost chunks:
// 7227 at 256 KiB, 3787 at 512 KiB, 2081 at 1 MiB and 1214 at 2 MiB for
// the base version, each an index entry, a tree reference and an
// encryption overhead in the repository, and index memory at backup time.
// DefaultOptions take a 1 MiB average: a quarter of the chunks of 256 KiB,
// while a tensor changed only in part (rows of an embedding) still shares
// all but the changed bytes and a chunk or so on either side; 256 KiB minimum (a quarter:
// the span FastCDC skips without hashing) and 4 MiB maximum (the most one
// chunk holds in memory on its way to the repository, half of 2 MiB's).
package chunking
