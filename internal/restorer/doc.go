// Package restorer writes a snapshot back to disk: into any directory, or
// as a site that bulwark up can start.
//
// Restoring is careful about what it writes and where. The snapshot's
// tree is validated before anything is written (absolute paths, "..",
// duplicates and symlinks leaving the target refuse the whole restore);
// directories already in the target must be real directories, never
// symlinks; symlinks from the snapshot are created last. Every file is
// written to a temporary file in its directory, checked against the
// snapshot's size and content hash, synced and renamed into place, and
// every directory that changed is synced before success is reported.
//
// Damage is contained: a file whose data is damaged or missing in the
// repository fails alone and is reported, the others are restored. A full
// disk stops the restore, with every partial file removed.
//
// Files are restored in parallel, and the blobs of each file are loaded
// ahead of the writer within a bound shared by all files, so memory stays
// flat whatever the file sizes.
package restorer
