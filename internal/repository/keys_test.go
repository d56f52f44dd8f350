package repository

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

func openWith(be backend.Backend, password string) (*Repository, error) {
	return OpenWithOptions(context.Background(), be, password, testOptions())
}

func TestKeysAddListRemove(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	added, err := r.AddKey(ctx, "second password")
	if err != nil {
		t.Fatal(err)
	}
	if added.Host != "testhost" || added.User != "tester" || added.Created.IsZero() {
		t.Fatalf("added key info = %+v", added)
	}
	r2, err := openWith(be, "second password")
	if err != nil {
		t.Fatalf("open with the added key: %v", err)
	}
	if r2.Config().ID != r.Config().ID {
		t.Fatal("the added key opens another repository")
	}
	keys, err := r.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys = %+v, want 2", keys)
	}
	current := 0
	for _, k := range keys {
		if k.Current {
			current++
			if k.ID == added.ID {
				t.Fatal("the added key is marked current")
			}
		}
	}
	if current != 1 {
		t.Fatalf("%d keys marked current", current)
	}
	if err := r.RemoveKey(ctx, keysCurrent(keys)); err == nil {
		t.Fatal("removing the key in use succeeded")
	}
	if err := r.RemoveKey(ctx, added.ID[:12]); err != nil {
		t.Fatalf("remove by prefix: %v", err)
	}
	if _, err := openWith(be, "second password"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("open with a removed key: %v, want ErrWrongPassword", err)
	}
	if err := r.RemoveKey(ctx, added.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove a missing key: %v, want ErrNotFound", err)
	}
}

func keysCurrent(keys []KeyInfo) string {
	for _, k := range keys {
		if k.Current {
			return k.ID
		}
	}
	return ""
}

func TestChangePassword(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	if err := r.ChangePassword(ctx, "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := openWith(be, testPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password after change: %v", err)
	}
	r2, err := openWith(be, "new password")
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := r2.Keys(ctx); len(keys) != 1 || !keys[0].Current {
		t.Fatalf("keys after change = %+v", keys)
	}
}

// A damaged key file does not lock everyone out: the other keys open.
func TestDamagedKeyFileSkipped(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	first := r.keyName
	if _, err := r.AddKey(ctx, "spare"); err != nil {
		t.Fatal(err)
	}
	be.Corrupt(backend.Handle{Type: backend.KeyFile, Name: first}, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	if _, err := openWith(be, "spare"); err != nil {
		t.Fatalf("open with the intact key: %v", err)
	}
	if _, err := openWith(be, testPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("open with the damaged key's password: %v, want ErrWrongPassword", err)
	}
}

// A key file's metadata is authenticated: editing the host fails it.
func TestKeyFileMetadataAuthenticated(t *testing.T) {
	mk := newMasterKey()
	data, err := newKeyFile(mk, "pw", testKDF, "host", "user")
	if err != nil {
		t.Fatal(err)
	}
	kf, err := decodeKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kf.open("pw"); err != nil {
		t.Fatal(err)
	}
	kf.Host = "evil"
	if _, err := kf.open("pw"); err == nil {
		t.Fatal("key with edited metadata opened")
	}
}

func TestEmptyPasswordRefused(t *testing.T) {
	r, _ := newTestRepo(t)
	if _, err := r.AddKey(context.Background(), ""); err == nil {
		t.Fatal("empty password accepted")
	}
}

// The default parameters are the ones users get; one real round trip.
func TestDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("the real key derivation takes about a second here")
	}
	if err := DefaultKDF.validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, be := newTestRepo(t)
	opts := testOptions()
	opts.KDF = KDFParams{}
	r, err := OpenWithOptions(ctx, be, testPassword, opts)
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.AddKey(ctx, "default kdf")
	if err != nil {
		t.Fatal(err)
	}
	kf, err := r.readKeyFile(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Params != DefaultKDF {
		t.Fatalf("new key uses %+v, want the default %+v", kf.Params, DefaultKDF)
	}
	if _, err := OpenWithOptions(ctx, be, "default kdf", opts); err != nil {
		t.Fatal(err)
	}
}
