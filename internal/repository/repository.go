package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Defaults for Options.
const (
	// DefaultPackSize is the target pack size: big enough that a 2 GB
	// backup is ~130 files and per-file costs (an fsync locally, a request
	// on S3) vanish next to the transfer, small enough that the packs
	// being filled and uploaded stay within ~64 MiB of memory and that
	// prune rewrites little.
	DefaultPackSize = 16 << 20
	// DefaultUploads is how many packs upload at once: two overlap one
	// pack's fsync or round trip with the next one's transfer.
	DefaultUploads = 2
	// DefaultIndexEvery: during a long backup an index file is written
	// every this many packs, so a killed backup leaves its packs indexed.
	DefaultIndexEvery = 4
	// DefaultStaleAfter: a lock not refreshed for this long is stale.
	DefaultStaleAfter = 30 * time.Second
)

// Options tune a Repository; the zero value means the defaults.
type Options struct {
	KDF        KDFParams     // for keys this process creates (Init, AddKey, ChangePassword)
	PackSize   int           // target pack size in bytes
	Uploads    int           // packs uploaded in parallel
	IndexEvery int           // packs per index file during long backups
	StaleAfter time.Duration // lock lease; refreshed every StaleAfter/3
	Logger     *slog.Logger
	Host, User string // recorded in key files and locks; default: this machine and user
}

func (o Options) withDefaults() Options {
	if o.KDF == (KDFParams{}) {
		o.KDF = DefaultKDF
	}
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	o.PackSize = min(o.PackSize, 1<<30)
	if o.Uploads <= 0 {
		o.Uploads = DefaultUploads
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = DefaultIndexEvery
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	o.StaleAfter = min(max(o.StaleAfter, minLease), maxLease)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.User == "" {
		if u, err := user.Current(); err == nil {
			o.User = u.Username
		}
	}
	return o
}

// Repository is an open repository. All methods are safe for concurrent
// use.
type Repository struct {
	be      backend.Backend
	cfg     Config
	mk      masterKey
	crypt   *crypter
	keyName string
	opts    Options
	log     *slog.Logger

	mu      sync.Mutex
	idx     *index
	pending map[blobKey]struct{} // accepted by SaveBlob, not yet in an uploaded pack
	// unindexed are packs uploaded by this process that no index file
	// lists yet.
	unindexed []*packRecord
	err       error // first failed upload or index write; every later save fails with it
	autoIndex bool  // write an index file every IndexEvery packs
	held      map[*Lock]struct{}

	pools     map[BlobType]*packerPool
	uploadSem chan struct{}
	uploads   sync.WaitGroup
	flushMu   sync.Mutex
}

// Init creates a repository in an empty backend with one key for password
// and the default options.
func Init(ctx context.Context, be backend.Backend, password string) (*Repository, error) {
	return InitWithOptions(ctx, be, password, Options{})
}

// InitWithOptions is Init with options.
func InitWithOptions(ctx context.Context, be backend.Backend, password string, opts Options) (*Repository, error) {
	if password == "" {
		return nil, errors.New("init repository: empty password")
	}
	_, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
	if err == nil {
		return nil, fmt.Errorf("init repository at %s: %w", be.Location(), ErrExists)
	}
	if !errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("init repository at %s: %w", be.Location(), err)
	}
	r := newRepository(be, opts)
	r.mk = newMasterKey()
	if r.crypt, err = newCrypter(r.mk); err != nil {
		return nil, err
	}
	r.cfg = newConfig()
	// The key first: a crash before the config leaves a key file that
	// opens nothing (Open skips keys whose master key does not open the
	// config) and Init can be run again.
	if r.keyName, err = r.saveKey(ctx, password); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	data, err := encodeConfig(r.crypt, r.cfg)
	if err != nil {
		return nil, err
	}
	if err := saveBytes(ctx, be, backend.Handle{Type: backend.ConfigFile}, data); err != nil {
		if errors.Is(err, backend.ErrExists) {
			err = ErrExists
		}
		return nil, fmt.Errorf("init repository: write config: %w", err)
	}
	return r, nil
}

// Open opens the repository with password and the default options.
func Open(ctx context.Context, be backend.Backend, password string) (*Repository, error) {
	return OpenWithOptions(ctx, be, password, Options{})
}

// OpenWithOptions opens a repository: it refuses an unknown format version
// (before decrypting anything), finds the key the password opens
// (ErrWrongPassword if none), and loads the index, recovering packs that
// no index lists.
func OpenWithOptions(ctx context.Context, be backend.Backend, password string, opts Options) (*Repository, error) {
	cfgData, err := loadConfigFile(ctx, be)
	if err != nil {
		return nil, err
	}
	r := newRepository(be, opts)
	if err := r.unlockWithPassword(ctx, password, cfgData); err != nil {
		return nil, err
	}
	if err := r.reloadIndex(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func newRepository(be backend.Backend, opts Options) *Repository {
	opts = opts.withDefaults()
	r := &Repository{
		be:        be,
		opts:      opts,
		log:       opts.Logger.With("component", "repository"),
		idx:       newIndex(),
		pending:   make(map[blobKey]struct{}),
		autoIndex: true,
		held:      make(map[*Lock]struct{}),
		uploadSem: make(chan struct{}, opts.Uploads),
		pools:     make(map[BlobType]*packerPool),
	}
	// Data packs: one being filled while up to Uploads are uploaded.
	// Trees are few and small: one packer.
	r.pools[DataBlob] = newPackerPool(DataBlob, opts.Uploads+1)
	r.pools[TreeBlob] = newPackerPool(TreeBlob, 1)
	return r
}

// reloadIndex replaces the in-memory index with a fresh one from the
// backend. Blobs accepted but not yet uploaded stay pending.
func (r *Repository) reloadIndex(ctx context.Context) error {
	res, err := r.loadIndex(ctx)
	if err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	for _, p := range res.problems {
		r.log.Warn("unusable repository file (run check)", "file", p.h.String(), "err", p.err)
	}
	for _, d := range res.damaged {
		r.log.Warn("damaged pack; its lost blobs will be stored again by the next backup (run check)", "pack", d.rec.ID.String(), "problem", d.String())
	}
	r.useIndex(res)
	return nil
}

// useIndex makes a freshly loaded index the one in use.
func (r *Repository) useIndex(res *indexLoad) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Packs this process uploaded but has not indexed are in the listing
	// already (they were saved before), so the fresh scan found them.
	r.idx = res.idx
	for _, p := range r.unindexed {
		r.idx.addPack(p)
	}
}

// Config returns the repository's config.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the backend the repository is stored in.
func (r *Repository) Backend() backend.Backend { return r.be }

// Stats describes the in-memory index.
type Stats struct {
	Packs, Blobs, UnindexedPacks int
}

// Stats reports what the index knows.
func (r *Repository) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Packs: len(r.idx.packs), Blobs: len(r.idx.blobs), UnindexedPacks: len(r.idx.unindexed) + len(r.unindexed)}
}
