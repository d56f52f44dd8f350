package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// KeyInfo describes one key file.
type KeyInfo struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Current bool      `json:"current"` // the key this Repository was opened with
}

// saveKey wraps the master key under password in a new key file and
// returns its name.
func (r *Repository) saveKey(ctx context.Context, password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	data, err := newKeyFile(r.mk, password, r.opts.KDF, r.opts.Host, r.opts.User)
	if err != nil {
		return "", err
	}
	name := Hash(data).String()
	if err := saveBytes(ctx, r.be, backend.Handle{Type: backend.KeyFile, Name: name}, data); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return name, nil
}

func (r *Repository) readKeyFile(ctx context.Context, name string) (*keyFile, error) {
	data, err := loadFile(ctx, r.be, backend.Handle{Type: backend.KeyFile, Name: name}, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	if got := Hash(data).String(); got != name {
		return nil, fmt.Errorf("key %s: content hashes to %s: %w", name, got, ErrCorrupt)
	}
	return decodeKeyFile(data)
}

// unlockWithPassword tries every key file until one opens with password
// and its master key opens the config.
func (r *Repository) unlockWithPassword(ctx context.Context, password string, cfgData []byte) error {
	names, err := listNames(ctx, r.be, backend.KeyFile)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("repository at %s has no keys", r.be.Location())
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	var unreadable []string
	for _, name := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		kf, err := r.readKeyFile(ctx, name)
		if err != nil {
			r.log.Warn("skipping unreadable key file", "key", name, "err", err)
			unreadable = append(unreadable, name)
			continue
		}
		mk, err := kf.open(password)
		if errors.Is(err, ErrWrongPassword) {
			continue
		}
		if err != nil {
			unreadable = append(unreadable, name)
			continue
		}
		crypt, err := newCrypter(mk)
		if err != nil {
			continue
		}
		cfg, err := decodeConfig(crypt, cfgData)
		if err != nil {
			// A key left by an interrupted Init wraps another master key.
			r.log.Warn("key opens with this password but not the config", "key", name, "err", err)
			continue
		}
		r.mk, r.crypt, r.cfg, r.keyName = mk, crypt, cfg, name
		return nil
	}
	if len(unreadable) > 0 {
		return fmt.Errorf("%w (%d of %d key files unreadable: %s)", ErrWrongPassword, len(unreadable), len(sorted), strings.Join(unreadable, ", "))
	}
	return ErrWrongPassword
}

// AddKey adds a key file that opens the repository with password.
func (r *Repository) AddKey(ctx context.Context, password string) (KeyInfo, error) {
	name, err := r.saveKey(ctx, password)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("add key: %w", err)
	}
	kf, err := r.readKeyFile(ctx, name)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("add key: %w", err)
	}
	return KeyInfo{ID: name, Host: kf.Host, User: kf.User, Created: kf.Created}, nil
}

// Keys lists the key files, oldest first. Unreadable ones are listed with
// only their id.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	names, err := listNames(ctx, r.be, backend.KeyFile)
	if err != nil {
		return nil, err
	}
	var keys []KeyInfo
	for name := range names {
		info := KeyInfo{ID: name, Current: name == r.currentKey()}
		if kf, err := r.readKeyFile(ctx, name); err == nil {
			info.Host, info.User, info.Created = kf.Host, kf.User, kf.Created
		}
		keys = append(keys, info)
	}
	slices.SortFunc(keys, func(a, b KeyInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// RemoveKey removes the key with the given id (or unique id prefix). It
// refuses the key this Repository was opened with, so a repository never
// loses its last key this way.
func (r *Repository) RemoveKey(ctx context.Context, id string) error {
	name, err := r.findKey(ctx, id)
	if err != nil {
		return err
	}
	if name == r.currentKey() {
		return fmt.Errorf("remove key %s: it is the key in use; open the repository with another key to remove it", name)
	}
	if err := r.be.Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: name}); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("remove key %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("remove key %s: %w", name, err)
	}
	return nil
}

func (r *Repository) findKey(ctx context.Context, prefix string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("key id is empty: %w", ErrNotFound)
	}
	names, err := listNames(ctx, r.be, backend.KeyFile)
	if err != nil {
		return "", err
	}
	var found []string
	for name := range names {
		if strings.HasPrefix(name, prefix) {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("key %s: %w", prefix, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("key %s matches %d keys: %w", prefix, len(found), ErrAmbiguous)
}

// ChangePassword replaces the key in use with a new one for password: the
// new key is written before the old one is removed, so a crash in between
// leaves both working.
func (r *Repository) ChangePassword(ctx context.Context, password string) error {
	name, err := r.saveKey(ctx, password)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	old := r.currentKey()
	if err := r.be.Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: old}); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("change password: new key %s written, old key %s not removed: %w", name, old, err)
	}
	r.mu.Lock()
	r.keyName = name
	r.mu.Unlock()
	return nil
}

func (r *Repository) currentKey() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keyName
}
