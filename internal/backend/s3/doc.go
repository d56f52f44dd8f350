// Package s3 is the backend.Backend for repositories in S3-compatible
// object storage (AWS S3, MinIO, Ceph RGW, versitygw, ...), named
//
//	s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]
//
// Objects use the local backend's layout under PREFIX (config, keys/<name>,
// data/<first two characters>/<name>, index/<name>, snapshots/<name>,
// locks/<name>), so a repository directory copied into a bucket with any
// S3 tool is a repository here, and back. Requests use path-style
// addressing and AWS Signature V4 through github.com/minio/minio-go/v7.
//
// Credentials come from Config, a credentials file, the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or the
// default shared credentials file, in that order; they are never part of a
// location, a message or a log line (Config redacts itself when printed).
// TLS trusts the system's CAs plus those of Config.CAFile.
//
// Integrity, end to end: every upload request carries Content-MD5 and the
// signed SHA-256 of its body, which the server verifies before it stores
// anything; each object records the SHA-256 of its whole content (for
// multipart uploads when the reader can be read twice, i.e. seeks), and a
// Load of a whole object checks it before fn sees the end of the data;
// every Load checks it got the number of bytes asked for. Ranged reads,
// which is how the repository reads blobs out of packs, are checked for
// length only: the repository authenticates each blob (AEAD) and each pack
// by its hash, so damage is caught one layer up in any case.
//
// Atomicity: a single PUT (objects up to Config.PartSize) is visible only
// when complete; larger objects go up in parts and appear when the upload
// is completed; a failed upload is aborted. An upload whose process died
// leaves an incomplete upload that no listing shows; AbortIncompleteUploads
// removes old ones.
//
// Save never overwrites: it stats the name first and sends
// If-None-Match: * so that of two racing saves only one wins on servers
// that support conditional writes (AWS S3, MinIO, versitygw); a server
// that answers "not implemented" is remembered and asked without.
//
// Errors: a missing object wraps backend.ErrNotFound; refused credentials,
// signatures or access wrap ErrAuth (permanent, with the reason); a
// missing bucket ErrNoBucket; untrusted certificates ErrTLS; timeouts,
// 5xx answers, throttling and broken connections are marked
// backend.Retryable. The client makes one attempt per request: retrying,
// with one policy and one time bound, is the retry decorator's job
// (package retry), and the concurrency bound that of package limit.
package s3
