package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/limit"
	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/backend/retry"
	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// The repository and its password, found as restic users expect: --repo or
// $BULWARK_REPOSITORY; the password from --password-file,
// $BULWARK_PASSWORD_FILE or $BULWARK_PASSWORD, else asked on the terminal
// without echo.
const (
	envRepository   = "BULWARK_REPOSITORY"
	envPassword     = "BULWARK_PASSWORD"
	envPasswordFile = "BULWARK_PASSWORD_FILE"
	// The new password of key add and key passwd, for scripts.
	envNewPassword     = "BULWARK_NEW_PASSWORD"
	envNewPasswordFile = "BULWARK_NEW_PASSWORD_FILE"
)

// repoFlags are the flags of every command that opens a repository.
type repoFlags struct {
	repo         string
	passwordFile string
	s3           s3Flags
}

// s3Flags are the credentials and CA of s3: repositories, when not from
// the environment. The secret key is read from a file, never a flag, so
// it does not show in the process list.
type s3Flags struct {
	accessKey, secretKeyFile, credentialsFile, profile, caFile string
}

func (f *repoFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVarP(&f.repo, "repo", "r", "", "repository location: a directory (or local:DIR), or s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] [$"+envRepository+"]")
	fl.StringVar(&f.passwordFile, "password-file", "", "read the repository password from the first line of this file [$"+envPasswordFile+"]")
	fl.StringVar(&f.s3.accessKey, "s3-access-key", "", "S3 access key id (with --s3-secret-key-file) [$AWS_ACCESS_KEY_ID]")
	fl.StringVar(&f.s3.secretKeyFile, "s3-secret-key-file", "", "read the S3 secret access key from the first line of this file [$AWS_SECRET_ACCESS_KEY]")
	fl.StringVar(&f.s3.credentialsFile, "s3-credentials-file", "", "AWS shared credentials file [$AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials]")
	fl.StringVar(&f.s3.profile, "s3-profile", "", "profile in the credentials file [$AWS_PROFILE]")
	fl.StringVar(&f.s3.caFile, "s3-ca-file", "", "PEM file of the CA that signed the S3 server's certificate [$BULWARK_S3_CA_FILE]")
}

// location is the repository's location, from the flag or the environment.
func (f *repoFlags) location() (string, error) {
	loc := f.repo
	if loc == "" {
		loc = os.Getenv(envRepository)
	}
	if loc == "" {
		return "", usageError{fmt.Errorf("no repository: give --repo or set $%s", envRepository)}
	}
	return loc, nil
}

// openBackend is the one place a location's scheme is read: "local:DIR" or
// a plain path is a directory. create makes a new repository's layout.
func openBackend(location string, create bool, s3f s3Flags) (backend.Backend, error) {
	scheme, rest, found := strings.Cut(location, ":")
	if !found || len(scheme) == 1 { // a plain path (or a Windows drive letter)
		scheme, rest = "local", location
	}
	switch scheme {
	case "local":
		if rest == "" {
			return nil, usageError{errors.New("repository location local: needs a directory")}
		}
		if create {
			return local.Create(rest)
		}
		return openLocal(rest)
	case "s3":
		return openS3(location, create, s3f)
	}
	// Anything else with a colon is a path that happens to contain one.
	if create {
		return local.Create(location)
	}
	return openLocal(location)
}

// openS3 opens (or, for repo init, creates) a repository in an
// S3-compatible bucket: s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX].
// Credentials come from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, or the
// shared credentials file ($AWS_SHARED_CREDENTIALS_FILE, $AWS_PROFILE); a
// private CA from $BULWARK_S3_CA_FILE. Transient failures are retried with
// backoff, and at most 8 requests run at once.
func openS3(location string, create bool, f s3Flags) (backend.Backend, error) {
	cfg := s3.Config{Location: location, AccessKey: f.accessKey, CredentialsFile: f.credentialsFile,
		Profile: f.profile, CAFile: firstNonEmpty(f.caFile, os.Getenv("BULWARK_S3_CA_FILE"))}
	if f.secretKeyFile != "" {
		secret, err := passwordFromFile(f.secretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("s3 secret key: %w", err)
		}
		cfg.SecretKey = secret
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, usageError{errors.New("--s3-access-key and --s3-secret-key-file go together")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var be *s3.Backend
	var err error
	if create {
		be, err = s3.Create(ctx, cfg)
	} else {
		be, err = s3.Open(ctx, cfg)
	}
	if err != nil {
		if errors.Is(err, s3.ErrBadLocation) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return retry.New(limit.New(be, 8), retry.Options{}), nil
}

// openLocal opens an existing directory repository; a missing one is a
// not-found error with advice.
func openLocal(dir string) (backend.Backend, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repository %s does not exist (create it with bulwark repo init): %w", dir, repository.ErrNotFound)
	}
	return local.Open(dir)
}

// open opens the repository with its password.
func (f *repoFlags) open(ctx context.Context, g *globals) (*repository.Repository, error) {
	loc, err := f.location()
	if err != nil {
		return nil, err
	}
	be, err := openBackend(loc, false, f.s3)
	if err != nil {
		return nil, err
	}
	pw, err := f.password("enter password for repository "+loc+": ", false)
	if err != nil {
		be.Close()
		return nil, err
	}
	repo, err := repository.OpenWithOptions(ctx, be, pw, repoOptions(g))
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("open repository %s: %w", loc, err)
	}
	return repo, nil
}

// password reads the repository password. confirm asks twice on a terminal
// (for a new repository).
func (f *repoFlags) password(prompt string, confirm bool) (string, error) {
	if path := firstNonEmpty(f.passwordFile, os.Getenv(envPasswordFile)); path != "" {
		return passwordFromFile(path)
	}
	if pw := os.Getenv(envPassword); pw != "" {
		return pw, nil
	}
	return askPassword(prompt, confirm, "--password-file, $"+envPasswordFile+" or $"+envPassword)
}

// newPassword reads the password of a new key: --new-password-file,
// $BULWARK_NEW_PASSWORD_FILE, $BULWARK_NEW_PASSWORD, else the terminal
// (twice).
func newPassword(file string) (string, error) {
	if path := firstNonEmpty(file, os.Getenv(envNewPasswordFile)); path != "" {
		return passwordFromFile(path)
	}
	if pw := os.Getenv(envNewPassword); pw != "" {
		return pw, nil
	}
	return askPassword("enter the new password: ", true, "--new-password-file, $"+envNewPasswordFile+" or $"+envNewPassword)
}

func passwordFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", usageError{fmt.Errorf("password file %s: the first line is empty", path)}
	}
	return pw, nil
}

// askPassword reads a password from the terminal without echo; without a
// terminal it says where else a password can come from.
func askPassword(prompt string, confirm bool, alternatives string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageError{fmt.Errorf("a password is needed and there is no terminal to ask on: use %s", alternatives)}
	}
	read := func(p string) (string, error) {
		fmt.Fprint(os.Stderr, p)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read(prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", usageError{errors.New("empty password")}
	}
	if confirm {
		again, err := read("enter it again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usageError{errors.New("the passwords differ")}
		}
	}
	return pw, nil
}

// repoOptions are the repository's options for this process.
func repoOptions(g *globals) repository.Options {
	return repository.Options{Logger: g.log.With("component", "repository")}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
