package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Config is the repository's identity, stored encrypted in the config
// file behind a plaintext format-version header.
type Config struct {
	ID      string    `json:"id"`      // 64 hex characters, random at Init
	Version int       `json:"version"` // FormatVersion at Init
	Created time.Time `json:"created"`
}

func newConfig() Config {
	var id [32]byte
	rand.Read(id[:])
	return Config{ID: hex.EncodeToString(id[:]), Version: FormatVersion, Created: time.Now().UTC()}
}

func (c Config) validate() error {
	if len(c.ID) != 64 {
		return fmt.Errorf("config id %q is not 64 hex characters: %w", c.ID, ErrCorrupt)
	}
	if _, err := hex.DecodeString(c.ID); err != nil {
		return fmt.Errorf("config id %q: %w", c.ID, ErrCorrupt)
	}
	if c.Version != FormatVersion {
		return fmt.Errorf("config says format version %d, header says %d: %w", c.Version, FormatVersion, ErrCorrupt)
	}
	return nil
}

// decodeConfig opens a config file's bytes with the master key.
func decodeConfig(c *crypter, data []byte) (Config, error) {
	plain, err := c.openObject(kindConfig, data)
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %v: %w", err, ErrCorrupt)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func encodeConfig(c *crypter, cfg Config) ([]byte, error) {
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return c.sealObject(kindConfig, plain), nil
}

// loadConfigFile reads the config and refuses an unknown format version
// before anything is decrypted.
func loadConfigFile(ctx context.Context, be backend.Backend) ([]byte, error) {
	data, err := loadFile(ctx, be, backend.Handle{Type: backend.ConfigFile}, 1<<20)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("no repository at %s (no config file): %w", be.Location(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := checkHeader(data, kindConfig); err != nil {
		return nil, fmt.Errorf("repository at %s: %w", be.Location(), err)
	}
	return data, nil
}
