package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Defaults for zero Config fields.
const (
	// DefaultPartSize: objects up to this size go up in one PUT; larger
	// ones in parts of this size. A repository pack (~16 MiB) fits one PUT.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's lower bound for every part but the last.
	MinPartSize = 5 << 20
	// DefaultUploadConcurrency parts of one object are in flight at once.
	DefaultUploadConcurrency = 2
	// DefaultStallTimeout ends a request whose connection moved no byte
	// for this long (a hung server), as a retryable error.
	DefaultStallTimeout = 2 * time.Minute
	DefaultRegion       = "us-east-1"
)

// Environment variables read when Config does not name credentials.
const (
	EnvAccessKey       = "AWS_ACCESS_KEY_ID"
	EnvSecretKey       = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken    = "AWS_SESSION_TOKEN"
	EnvCredentialsFile = "AWS_SHARED_CREDENTIALS_FILE"
	EnvProfile         = "AWS_PROFILE"
)

// ErrNoCredentials: no access key was given and none was found.
var ErrNoCredentials = errors.New("no S3 credentials")

// Config says where a repository is and how to reach it. Credentials are
// looked up in this order: AccessKey/SecretKey; CredentialsFile;
// the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN); the default shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE
// or "default").
//
// Config's String and LogValue redact the secrets, so a Config can be
// printed or logged as a whole.
type Config struct {
	Location string // s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]

	AccessKey       string
	SecretKey       string
	SessionToken    string
	CredentialsFile string // AWS shared credentials file (INI)
	Profile         string // profile in the credentials file

	Region string // signing region; DefaultRegion when empty
	CAFile string // PEM certificates trusted in addition to the system's

	PartSize          int64         // DefaultPartSize when 0; at least MinPartSize
	UploadConcurrency int           // DefaultUploadConcurrency when 0
	StallTimeout      time.Duration // DefaultStallTimeout when 0
	ListPageSize      int           // keys per listing request; 1000 when 0

	Logger *slog.Logger // nil discards
}

// String shows the configuration without secrets.
func (c Config) String() string {
	return fmt.Sprintf("s3.Config{Location:%s AccessKey:%s SecretKey:%s SessionToken:%s CredentialsFile:%q Profile:%q Region:%q CAFile:%q}",
		c.Location, maskAccessKey(c.AccessKey), redact(c.SecretKey), redact(c.SessionToken), c.CredentialsFile, c.Profile, c.Region, c.CAFile)
}

// GoString keeps %#v from printing the secrets too.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog print the configuration without secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("location", c.Location),
		slog.String("access_key", maskAccessKey(c.AccessKey)),
		slog.String("secret_key", redact(c.SecretKey)),
		slog.String("session_token", redact(c.SessionToken)),
		slog.String("credentials_file", c.CredentialsFile),
		slog.String("profile", c.Profile),
		slog.String("region", c.Region),
		slog.String("ca_file", c.CAFile),
	)
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// maskAccessKey keeps the first four characters, enough to tell keys apart
// in a message.
func maskAccessKey(s string) string {
	if len(s) <= 4 {
		return redact(s)
	}
	return s[:4] + "…"
}

func (c *Config) fillDefaults() error {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.PartSize < MinPartSize {
		return fmt.Errorf("part size %d is below S3's minimum of %d bytes", c.PartSize, MinPartSize)
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.ListPageSize <= 0 || c.ListPageSize > 1000 {
		c.ListPageSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// resolveCredentials returns the credentials to sign with and where they
// came from ("config", "environment", or the file's path and profile).
func resolveCredentials(c Config) (*credentials.Credentials, string, error) {
	if c.AccessKey != "" || c.SecretKey != "" {
		if c.AccessKey == "" || c.SecretKey == "" {
			return nil, "", fmt.Errorf("%w: both an access key and a secret key are needed", ErrNoCredentials)
		}
		return credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken), "config", nil
	}
	if c.CredentialsFile != "" {
		return fileCredentials(c.CredentialsFile, c.Profile)
	}
	id, secret := os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey)
	switch {
	case id != "" && secret != "":
		return credentials.NewStaticV4(id, secret, os.Getenv(EnvSessionToken)), "environment", nil
	case id != "" || secret != "":
		return nil, "", fmt.Errorf("%w: only one of %s and %s is set", ErrNoCredentials, EnvAccessKey, EnvSecretKey)
	}
	file := os.Getenv(EnvCredentialsFile)
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, "", fmt.Errorf("%w: set %s and %s, or give a credentials file", ErrNoCredentials, EnvAccessKey, EnvSecretKey)
		}
		file = filepath.Join(home, ".aws", "credentials")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, "", fmt.Errorf("%w: set %s and %s, or give a credentials file (none at %s)", ErrNoCredentials, EnvAccessKey, EnvSecretKey, file)
	}
	return fileCredentials(file, c.Profile)
}

func fileCredentials(file, profile string) (*credentials.Credentials, string, error) {
	if profile == "" {
		profile = os.Getenv(EnvProfile)
	}
	if profile == "" {
		profile = "default"
	}
	p := &credentials.FileAWSCredentials{Filename: file, Profile: profile}
	v, err := p.RetrieveWithCredContext(&credentials.CredContext{})
	if err != nil {
		return nil, "", fmt.Errorf("%w: read credentials file %s (profile %s): %v", ErrNoCredentials, file, profile, err)
	}
	if v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, "", fmt.Errorf("%w: credentials file %s has no aws_access_key_id/aws_secret_access_key in profile %s", ErrNoCredentials, file, profile)
	}
	// The provider itself, not the values: it refreshes what expires
	// (credential_process, SSO).
	return credentials.New(p), file + " [" + profile + "]", nil
}

// newTransport is an HTTP transport with timeouts that turn a dead or hung
// server into errors, and the extra CAs of cfg.CAFile.
func newTransport(cfg Config) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	stall := cfg.StallTimeout
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: conn, timeout: stall}, nil
		},
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: stall,
		IdleConnTimeout:       30 * time.Second, // under the idle timeout of common servers
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		// Ranged reads must arrive as stored, never transparently gunzipped.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}, nil
}

// stallConn fails a read or write that makes no progress for timeout.
// Every call pushes the deadline out, so a long transfer that keeps moving
// is never cut; only silence is.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(b)
}

func (c *stallConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(b)
}
