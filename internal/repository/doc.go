// Package repository is the backup repository format: what is stored,
// how it is encrypted, named, verified, found again and removed. It sits
// on a backend.Backend (a flat store of files by type) and knows nothing
// of sites, controllers or chunking: the archiver cuts files into chunks
// and saves them here as blobs; the restorer loads them back.
//
// Objects:
//
//   - Blobs: a chunk of file content (DataBlob) or a snapshot's tree
//     (TreeBlob), identified by the Hash (BLAKE3-256) of its plaintext,
//     compressed with zstd when that saves at least 1/32, sealed with
//     AES-256-GCM under the master key with type, flags and id as
//     additional data.
//   - Packs: many blobs (target 16 MiB) followed by an encrypted trailer
//     listing them; named by the Hash of the whole file, so a pack
//     verifies itself. Data and tree blobs go to separate packs.
//   - Index files: which blob is in which pack at which offset; written
//     every few packs and at Flush. Packs no index lists (a killed
//     backup) are found by listing and read back from their trailers.
//   - Snapshots: one file each, named by the Hash of their JSON, pointing
//     at a tree blob that lists every file with its content blobs. Every
//     snapshot is complete on its own.
//   - Keys: the master key wrapped under a password-derived key
//     (Argon2id); any number of them. The config (repository id, format
//     version) is encrypted behind a plaintext version header.
//   - Locks: leases refreshed in the background; shared for backups and
//     check, exclusive for prune and forget.
//
// Concurrency and crashes: SaveBlob is safe from many goroutines; packs
// fill in a bounded pool and upload in the background (two at a time by
// default). Everything written is written once under a new name, except
// removals by prune, which orders its steps so that a crash at any point
// leaves a consistent repository. docs/repository-format.md describes the
// bytes and the reasons behind each choice.
package repository
