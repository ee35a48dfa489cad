package releases

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// FuzzBlobRequest: whatever bytes open a ProtoRelease stream, the
// decoder returns a valid request or an error, never panics, and a
// request it accepts encodes and decodes to itself.
func FuzzBlobRequest(f *testing.F) {
	sha := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, r := range []wire.BlobRequest{
		{Versions: wire.OurVersions(), Op: wire.BlobGet, SHA256: sha, Size: 3 << 20, Offset: 1 << 20},
		{Op: wire.BlobPut, SHA256: sha, Size: 1},
		{Op: wire.BlobHas, SHA256: sha, Size: wire.MaxBlob},
	} {
		raw, _ := json.Marshal(r)
		f.Add(raw)
	}
	f.Add([]byte(`{"op":"get","sha256":"` + sha + `","size":-1}`))
	f.Add([]byte(`{"op":"put","sha256":"` + sha + `","size":10,"offset":11}`))
	f.Add([]byte(`{"op":"del"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r wire.BlobRequest
		if err := wire.Decode(body, &r); err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded an invalid request %+v: %v", r, err)
		}
		raw, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var again wire.BlobRequest
		if err := wire.Decode(raw, &again); err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip of %+v: %+v, %v", r, again, err)
		}
	})
}
