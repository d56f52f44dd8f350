package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
)

const adminTokenFile = "admin-token"

// siteAdminToken returns the admin token kept in the site directory,
// creating a random one (mode 0600) when create is set and none exists.
func siteAdminToken(site string, create bool) (string, error) {
	path := filepath.Join(site, adminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if !create {
		return "", nil
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	if err := os.MkdirAll(site, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return tok, nil
}

// tokenFromEnv returns flag, or $BULWARK_ADMIN_TOKEN when the flag is empty.
// Flags read the environment here, not as their default, so that --help
// never prints a secret.
func tokenFromEnv(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("BULWARK_ADMIN_TOKEN")
}
