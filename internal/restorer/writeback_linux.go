package restorer

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing a range of a file to the
// disk now, without waiting: the disk works while the rest of the file is
// being restored, and the final fsync has little left to do.
func startWriteback(f tempFile, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
