package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecodeListLimits: each exchange decoder refuses a list one longer
// than its limit, naming the count and the limit, and names the element
// that fails validation by its index.
func TestDecodeListLimits(t *testing.T) {
	key := Key{Kind: KindClient, ID: "acme"}
	bad := Key{Kind: "bogus", ID: "x"}
	list := func(n int, last Key) []byte {
		ks := make([]Key, n)
		for i := range ks {
			ks[i] = key
		}
		if n > 0 {
			ks[n-1] = last
		}
		raw, err := json.Marshal(ks)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	decodeKeys := func(b []byte) error { _, err := DecodeKeys(b); return err }
	decodeVersions := func(b []byte) error { _, err := DecodeVersions(b); return err }
	decodeRecords := func(b []byte) error { _, err := DecodeRecords(b); return err }
	tests := []struct {
		name   string
		decode func([]byte) error
		data   []byte
		want   string
	}{
		{"keys over the limit", decodeKeys, list(MaxKeys+1, key), fmt.Sprintf("%d keys, limit %d", MaxKeys+1, MaxKeys)},
		{"key invalid", decodeKeys, list(3, bad), "key 2: "},
		{"versions over the limit", decodeVersions, []byte("[" + strings.Repeat("{},", MaxKeys) + "{}]"),
			fmt.Sprintf("%d versions, limit %d", MaxKeys+1, MaxKeys)},
		{"version invalid", decodeVersions, []byte(`[{"kind":"bogus","id":"x"}]`), "version 0: "},
		{"records over the limit", decodeRecords, []byte("[" + strings.Repeat("{},", MaxRecords) + "{}]"),
			fmt.Sprintf("%d records, limit %d", MaxRecords+1, MaxRecords)},
		{"record invalid", decodeRecords, []byte(`[{"kind":"client","id":"acme"}]`), "record 0: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.data)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}
