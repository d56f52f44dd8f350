package state

import (
	"context"
	"encoding/json"
	"io"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The read side of Bolt: every read is one bbolt read transaction, so it
// sees one committed state and never blocks the writer.

// nested runs fn on the deployment's bucket under parent (nil if it has
// none yet) after checking that the deployment exists.
func (b *Bolt) nested(ctx context.Context, name string, parent []byte, fn func(*bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error {
		rec, err := b.getRecord(tx, name)
		if err != nil {
			return err
		}
		if rec == nil {
			return notFound(name)
		}
		return fn(tx.Bucket(parent).Bucket([]byte(name)))
	})
}

func (b *Bolt) decodeRevision(name string, k, v []byte) (*Revision, error) {
	where := "revisions/" + name + "/" + describeKey(k)
	p, err := unseal(k, v)
	if err != nil {
		return nil, b.corrupt(where, err)
	}
	var e revisionEnvelope
	if err := json.Unmarshal(p, &e); err != nil {
		return nil, b.corrupt(where, err)
	}
	return &Revision{Name: name, Number: e.Number, Data: e.Data, Created: e.Created}, nil
}

func (b *Bolt) Revisions(ctx context.Context, name string) (out []*Revision, err error) {
	err = b.nested(ctx, name, bucketRevisions, func(revs *bolt.Bucket) error {
		if revs == nil {
			return nil
		}
		return revs.ForEach(func(k, v []byte) error {
			r, err := b.decodeRevision(name, k, v)
			if err == nil {
				out = append(out, r)
			}
			return err
		})
	})
	return out, err
}

func (b *Bolt) Revision(ctx context.Context, name string, number int64) (out *Revision, err error) {
	err = b.nested(ctx, name, bucketRevisions, func(revs *bolt.Bucket) error {
		k := itob(uint64(number))
		var v []byte
		if revs != nil && number > 0 {
			v = revs.Get(k)
		}
		if v == nil {
			return revisionNotFound(name, number)
		}
		out, err = b.decodeRevision(name, k, v)
		return err
	})
	return out, err
}

func (b *Bolt) Events(ctx context.Context, name string, limit int) (out []Event, err error) {
	err = b.nested(ctx, name, bucketEvents, func(eb *bolt.Bucket) error {
		if eb == nil {
			return nil
		}
		c := eb.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			p, err := unseal(k, v)
			var e Event
			if err == nil {
				err = json.Unmarshal(p, &e)
			}
			if err != nil {
				return b.corrupt("events/"+name+"/"+describeKey(k), err)
			}
			out = append(out, e)
		}
		slices.Reverse(out)
		return nil
	})
	return out, err
}

func (b *Bolt) Meta(ctx context.Context, key string) (out []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketController).Get([]byte(key))
		if v == nil {
			return metaNotFound(key)
		}
		p, err := unseal([]byte(key), v)
		if err != nil {
			return b.corrupt("controller/"+key, err)
		}
		out = slices.Clone(p)
		return nil
	})
	return out, err
}

// Snapshot copies the file as of one read transaction; writers go on
// meanwhile (bbolt keeps the pages that transaction sees until it ends).
func (b *Bolt) Snapshot(ctx context.Context, w io.Writer) (n int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	return n, err
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
