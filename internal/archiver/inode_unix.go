//go:build unix

package archiver

import (
	"io/fs"
	"syscall"

	"github.com/bulwark-ml/bulwark/internal/repository"
)

// inodeOf is the file's inode number, 0 when the platform has none.
func inodeOf(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// sameInode reports whether a file is still the one the parent snapshot
// read: a file replaced by another with the same size and mtime (a copy
// with preserved times, a restore) has a new inode and is read again.
// Snapshots without inodes match anything.
func sameInode(p *repository.Node, e *entry) bool {
	ino := inodeOf(e.info)
	return p.Inode == 0 || ino == 0 || p.Inode == ino
}
