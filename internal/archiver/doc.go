// Package archiver takes a backup of a site: it turns the site directory
// (model store, controller state, configuration) into a snapshot in a
// backup repository.
//
// A backup is hot or cold. Hot asks the running controller for a
// transactionally consistent copy of its state over its API while serving
// goes on; cold reads the state file itself and refuses if the site runs.
// Model versions are immutable, so the model store is read as it is;
// pushes in progress (staging directories) and runtime files (logs) are
// left out.
//
// Files are cut into content-defined chunks, with model files' tensor
// boundaries as extra cut points (package chunking), and only chunks the
// repository lacks are stored. With a parent snapshot, files whose size,
// modification time and inode have not changed are taken from it without
// being read. Either way every snapshot references its whole content and
// restores on its own.
//
// The archiver sits on top of repository, chunking, state and control
// (for the controller's client and the state summary); only the CLI uses
// it.
package archiver
