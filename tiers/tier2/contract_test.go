package tier2_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// contractBucket is one implementation under the contract, with a way to
// damage a stored object's bytes while its metadata keeps the old crc64.
type contractBucket struct {
	tier2.Bucket
	corrupt func(t *testing.T, key string)
}

// TestBucketContract holds every tier2.Bucket to the contract the layers
// above rely on (tier2.Bucket's doc comment), so the in-memory bucket that
// serves their tests cannot drift from the minio client on a real server.
func TestBucketContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		b := memory.New()
		runBucketContract(t, contractBucket{Bucket: b, corrupt: func(t *testing.T, key string) {
			if !b.Corrupt(key, 3) {
				t.Fatalf("corrupt %s: no such object", key)
			}
		}})
	})
	t.Run("versitygw", func(t *testing.T) {
		srv := harness.StartS3(t)
		c, err := tier2.New(context.Background(), tier2.Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Prefix: "contract/",
			Retry: tier2.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		runBucketContract(t, contractBucket{Bucket: c, corrupt: func(t *testing.T, key string) {
			corruptS3Object(t, srv, "contract/"+key)
		}})
	})
}

// corruptS3Object rewrites an object with one byte flipped and its user
// metadata (the crc64 of the good bytes) unchanged.
func corruptS3Object(t *testing.T, srv *harness.S3, key string) {
	t.Helper()
	ctx := context.Background()
	mc := srv.Client(t)
	obj, err := mc.GetObject(ctx, srv.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obj.Stat()
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{}
	for k, v := range info.UserMetadata {
		meta[strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")] = v
	}
	data[3] ^= 0xff
	if _, err := mc.PutObject(ctx, srv.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func runBucketContract(t *testing.T, b contractBucket) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, b contractBucket, key string)
	}{
		{"UploadThenGetReturnsTheBytesAndMetadata", contractUploadThenGet},
		{"UploadRefusesAWrongCRC", contractUploadRefusesAWrongCRC},
		{"UploadOfTheSameBytesIsSkippedReplaceWrites", contractUploadSkipsReplaceWrites},
		{"UploadOfOtherBytesOverwrites", contractUploadOfOtherBytesOverwrites},
		{"MissingObjectIsNotFound", contractMissingObject},
		{"GetRangeReadsASliceAndRefusesPastTheEnd", contractGetRange},
		{"DeleteRemovesAndIsIdempotent", contractDelete},
		{"IterListsThePrefixInKeyOrder", contractIter},
		{"GetOfADamagedObjectIsACorruptionError", contractCorruption},
		{"IterListsBothKeyLayoutsUnderAStream", contractIterEpochLayouts},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Every case has keys of its own: the server's bucket is shared.
			c.run(t, ctx, b, c.name+"/obj")
		})
	}
}

var contractData = []byte("frame one, frame two, frame three: the bytes of a segment artifact")

func contractUploadThenGet(t *testing.T, ctx context.Context, b contractBucket, key string) {
	meta := tier2.ObjectMeta{Records: 3, FirstOffset: 10, LastOffset: 12}
	res, err := tier2.UploadBytes(ctx, b, key, contractData, meta)
	if err != nil {
		t.Fatal(err)
	}
	if res.ETag == "" || res.Skipped {
		t.Fatalf("first upload: %+v, want an ETag and not skipped", res)
	}
	var buf bytes.Buffer
	got, err := b.Get(ctx, key, &buf)
	if err != nil {
		t.Fatal(err)
	}
	meta.CRC64 = crc(contractData)
	if !bytes.Equal(buf.Bytes(), contractData) || got != meta {
		t.Fatalf("get: %q %+v, want %q %+v", buf.Bytes(), got, contractData, meta)
	}
	info, err := b.Attributes(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(contractData)) || info.Meta != meta || info.ETag == "" {
		t.Fatalf("attributes: %+v, want key %s, size %d, meta %+v", info, key, len(contractData), meta)
	}
	if ok, err := b.Exists(ctx, key); !ok || err != nil {
		t.Fatalf("exists: %v %v, want true", ok, err)
	}
}

func contractUploadRefusesAWrongCRC(t *testing.T, ctx context.Context, b contractBucket, key string) {
	_, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{CRC64: crc(contractData) ^ 1})
	var ce *tier2.CorruptionError
	if !errors.As(err, &ce) || tier2.Reason(err) != tier2.ReasonCodec {
		t.Fatalf("upload with a wrong crc64: %v, want a CorruptionError (reason 1)", err)
	}
	if ok, err := b.Exists(ctx, key); ok || err != nil {
		t.Fatalf("refused upload stored something: exists %v %v", ok, err)
	}
}

func contractUploadSkipsReplaceWrites(t *testing.T, ctx context.Context, b contractBucket, key string) {
	first, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Skipped || again.ETag != first.ETag {
		t.Fatalf("replayed upload: %+v, want skipped with ETag %s", again, first.ETag)
	}
	re, err := b.Replace(ctx, key, bytes.NewReader(contractData), int64(len(contractData)), tier2.ObjectMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if re.Skipped {
		t.Fatalf("replace was skipped: %+v", re)
	}
}

func contractUploadOfOtherBytesOverwrites(t *testing.T, ctx context.Context, b contractBucket, key string) {
	if _, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	other := []byte("other bytes")
	res, err := tier2.UploadBytes(ctx, b, key, other, tier2.ObjectMeta{Records: 1})
	if err != nil || res.Skipped {
		t.Fatalf("upload of other bytes: %+v %v, want written", res, err)
	}
	var buf bytes.Buffer
	meta, err := b.Get(ctx, key, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), other) || meta.Records != 1 {
		t.Fatalf("get after overwrite: %q %+v %v, want %q with 1 record", buf.Bytes(), meta, err, other)
	}
}

func contractMissingObject(t *testing.T, ctx context.Context, b contractBucket, key string) {
	_, getErr := b.Get(ctx, key, io.Discard)
	_, rangeErr := b.GetRange(ctx, key, 0, 1)
	_, attrErr := b.Attributes(ctx, key)
	for op, err := range map[string]error{"get": getErr, "get-range": rangeErr, "attributes": attrErr} {
		if !errors.Is(err, tier2.ErrNotFound) || tier2.Reason(err) != tier2.ReasonMissing {
			t.Errorf("%s of a missing object: %v, want ErrNotFound (reason 4)", op, err)
		}
	}
	if ok, err := b.Exists(ctx, key); ok || err != nil {
		t.Errorf("exists of a missing object: %v %v, want false, nil", ok, err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Errorf("delete of a missing object: %v, want nil", err)
	}
}

func contractGetRange(t *testing.T, ctx context.Context, b contractBucket, key string) {
	if _, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetRange(ctx, key, 6, 3)
	if err != nil || string(got) != "one" {
		t.Fatalf("range [6, 9): %q %v, want \"one\"", got, err)
	}
	tail, err := b.GetRange(ctx, key, int64(len(contractData))-5, 5)
	if err != nil || string(tail) != "ifact" {
		t.Fatalf("last 5 bytes: %q %v, want \"ifact\"", tail, err)
	}
	if _, err := b.GetRange(ctx, key, int64(len(contractData))-2, 5); err == nil || errors.Is(err, tier2.ErrNotFound) {
		t.Fatalf("range past the end: %v, want an error other than not found", err)
	}
}

func contractDelete(t *testing.T, ctx context.Context, b contractBucket, key string) {
	if _, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("delete %d: %v", i+1, err)
		}
	}
	if ok, err := b.Exists(ctx, key); ok || err != nil {
		t.Fatalf("exists after delete: %v %v, want false", ok, err)
	}
}

func contractIter(t *testing.T, ctx context.Context, b contractBucket, key string) {
	dir := strings.TrimSuffix(key, "obj")
	for _, k := range []string{"seg/2", "seg/10", "seg/1", "segments/1", "other/1"} {
		if _, err := tier2.UploadBytes(ctx, b, dir+k, []byte(k), tier2.ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := tier2.List(ctx, b, dir+"seg/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, fmt.Sprintf("%s:%d", strings.TrimPrefix(o.Key, dir), o.Size))
	}
	if want := "seg/1:5 seg/10:6 seg/2:5"; strings.Join(got, " ") != want {
		t.Fatalf("iter seg/: %v, want %s", got, want)
	}
	stop := errors.New("stop")
	calls := 0
	err = b.Iter(ctx, dir, func(tier2.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("iter whose callback fails: %v after %d calls, want its error after 1", err, calls)
	}
}

func contractCorruption(t *testing.T, ctx context.Context, b contractBucket, key string) {
	if _, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	b.corrupt(t, key)
	_, err := b.Get(ctx, key, io.Discard)
	var ce *tier2.CorruptionError
	if !errors.As(err, &ce) || tier2.Reason(err) != tier2.ReasonCodec || ce.Want != crc(contractData) {
		t.Fatalf("get of a damaged object: %v, want a CorruptionError (reason 1) naming crc %016x", err, crc(contractData))
	}
	// Upload trusts metadata that names the same crc and size: that is
	// why the store repairs with Replace.
	if res, err := tier2.UploadBytes(ctx, b, key, contractData, tier2.ObjectMeta{}); err != nil || !res.Skipped {
		t.Fatalf("upload over a damaged object: %+v %v, want skipped (metadata matches)", res, err)
	}
	if _, err := b.Replace(ctx, key, bytes.NewReader(contractData), int64(len(contractData)), tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, key, io.Discard); err != nil {
		t.Fatalf("get after replace: %v, want the repaired object", err)
	}
}

func crc(b []byte) uint64 {
	return crc64.Checksum(b, tier2.CRC64Table)
}

// A listing under a stream's prefix returns the keys of every epoch, with
// and without the epoch part: recovery finds both layouts in one listing.
func contractIterEpochLayouts(t *testing.T, ctx context.Context, b contractBucket, key string) {
	dir := strings.TrimSuffix(key, "obj")
	for _, epoch := range []uint64{0, 2, 10} {
		k := tier2.SegmentKeyAt("s", epoch, 7)
		if _, err := tier2.UploadBytes(ctx, b, dir+k, []byte(k), tier2.ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := tier2.List(ctx, b, dir+"segments/s/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		k, ok := tier2.ParseKey(strings.TrimPrefix(o.Key, dir))
		if !ok || k.ID != 7 {
			t.Fatalf("listed %s, which does not parse as segment 7", o.Key)
		}
		got = append(got, fmt.Sprint(k.Epoch))
	}
	if want := "10 2 0"; strings.Join(got, " ") != want {
		t.Fatalf("epochs listed %v, want %s (key order)", got, want)
	}
}
