package s3

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testAccess = "AKIAEXAMPLEACCESS"
	testSecret = "wJalrXUtnFEMI-very-secret"
	testToken  = "session-token-secret"
)

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := Config{Location: "s3:http://h/bucket", AccessKey: testAccess, SecretKey: testSecret, SessionToken: testToken}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("opening", "cfg", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("opening", "cfg", c)
	outputs := []string{
		c.String(),
		fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%10s", c),
		fmt.Sprint(&c), fmt.Sprintf("%+v", &c),
		logged.String(),
	}
	for _, out := range outputs {
		for _, secret := range []string{testSecret, testToken, testAccess} {
			if strings.Contains(out, secret) {
				t.Fatalf("printed config shows a secret: %s", out)
			}
		}
		if !strings.Contains(out, "s3:http://h/bucket") {
			t.Fatalf("printed config lost the location: %s", out)
		}
	}
	if !strings.Contains(c.String(), "AKIA…") || !strings.Contains(c.String(), "[redacted]") {
		t.Fatalf("String() = %s, want the masked access key and [redacted]", c.String())
	}
}

// clearEnv unsets the credential variables and points HOME at an empty
// directory, so no real credentials leak into the test.
func clearEnv(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{EnvAccessKey, EnvSecretKey, EnvSessionToken, EnvCredentialsFile, EnvProfile, "AWS_ACCESS_KEY", "AWS_SECRET_KEY"} {
		t.Setenv(v, "")
	}
	return home
}

func writeCredentials(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ini := "[default]\naws_access_key_id = fileaccess\naws_secret_access_key = filesecret\n\n[backup]\naws_access_key_id = backupaccess\naws_secret_access_key = backupsecret\n\n[broken]\naws_access_key_id = onlyhalf\n"
	if err := os.WriteFile(path, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialOrder(t *testing.T) {
	home := clearEnv(t)
	explicitFile := filepath.Join(t.TempDir(), "creds")
	writeCredentials(t, explicitFile)

	check := func(c Config, wantAccess, wantFrom string) {
		t.Helper()
		creds, from, err := resolveCredentials(c)
		if err != nil {
			t.Fatal(err)
		}
		v, err := creds.GetWithContext(nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.AccessKeyID != wantAccess || !strings.Contains(from, wantFrom) {
			t.Fatalf("got %s from %q, want %s from %q", v.AccessKeyID, from, wantAccess, wantFrom)
		}
	}

	// Nothing anywhere: a clear error naming the variables.
	_, _, err := resolveCredentials(Config{})
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), EnvAccessKey) {
		t.Fatalf("no credentials: %v", err)
	}

	// The default file.
	writeCredentials(t, filepath.Join(home, ".aws", "credentials"))
	check(Config{}, "fileaccess", filepath.Join(home, ".aws", "credentials"))
	check(Config{Profile: "backup"}, "backupaccess", "[backup]")
	t.Setenv(EnvProfile, "backup")
	check(Config{}, "backupaccess", "[backup]")
	t.Setenv(EnvProfile, "")

	// The environment beats the default file.
	t.Setenv(EnvAccessKey, "envaccess")
	t.Setenv(EnvSecretKey, "envsecret")
	check(Config{}, "envaccess", "environment")

	// An explicit file beats the environment; explicit keys beat all.
	check(Config{CredentialsFile: explicitFile}, "fileaccess", explicitFile)
	check(Config{AccessKey: "cfgaccess", SecretKey: "cfgsecret", CredentialsFile: explicitFile}, "cfgaccess", "config")

	// Half of a pair is an error, not a silent fall-through.
	for _, c := range []Config{{AccessKey: "only"}, {SecretKey: "only"}} {
		if _, _, err := resolveCredentials(c); !errors.Is(err, ErrNoCredentials) {
			t.Fatalf("half a key pair in config: %v", err)
		}
	}
	t.Setenv(EnvSecretKey, "")
	if _, _, err := resolveCredentials(Config{}); !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("half a key pair in the environment: %v", err)
	}
	if _, _, err := resolveCredentials(Config{CredentialsFile: explicitFile, Profile: "broken"}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("profile with half a key pair: %v", err)
	}
	if _, _, err := resolveCredentials(Config{CredentialsFile: filepath.Join(home, "missing")}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("missing explicit file: %v", err)
	}
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	c := Config{}
	if err := c.fillDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.PartSize != DefaultPartSize || c.Region != DefaultRegion || c.UploadConcurrency != DefaultUploadConcurrency || c.ListPageSize != 1000 {
		t.Fatalf("defaults: %+v", c)
	}
	c = Config{PartSize: 1 << 20}
	if err := c.fillDefaults(); err == nil {
		t.Fatal("a part size below S3's minimum was accepted")
	}
}

func TestBadCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		if _, err := newTransport(Config{CAFile: ca}); err == nil {
			t.Fatalf("CA file %s accepted", ca)
		}
	}
}
