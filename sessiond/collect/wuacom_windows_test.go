package collect

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"

	ole "github.com/go-ole/go-ole"
	"github.com/go-ole/go-ole/oleutil"
)

// TestReadItems reads a COM collection as the Windows Update ones are
// read, from a Scripting.Dictionary keyed 0…n-1, which has what a WUA
// collection has (Count, and Item(i)) and which Windows and Wine both
// provide: up to the limit, in order, and an item's error names the item.
func TestReadItems(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	uninit, err := comInit()
	if err != nil {
		t.Fatal(err)
	}
	if uninit {
		defer ole.CoUninitialize()
	}
	d, err := createDispatch("Scripting.Dictionary")
	if err != nil {
		t.Fatalf("no Scripting.Dictionary to read: %v", err)
	}
	defer d.Release()
	item := func(coll *ole.IDispatch, i int) (string, error) { return getString(coll, "Item", i) }
	name := func(i int) string { return fmt.Sprintf("entry %d", i) }

	if got, err := readItems(d, 10, name, item); err != nil || len(got) != 0 {
		t.Errorf("empty collection: %q, %v; want none", got, err)
	}
	for i := range 5 {
		v, err := oleutil.CallMethod(d, "Add", int32(i), fmt.Sprintf("KB%d", 500+i))
		if err != nil {
			t.Fatal(err)
		}
		v.Clear()
	}
	if got, err := readItems(d, 3, name, item); err != nil || !slices.Equal(got, []string{"KB500", "KB501", "KB502"}) {
		t.Errorf("limit 3: %q, %v; want the first 3", got, err)
	}
	if got, err := readItems(d, 10, name, item); err != nil || len(got) != 5 || got[4] != "KB504" {
		t.Errorf("limit 10: %q, %v; want all 5", got, err)
	}
	bad := errors.New("not a string")
	_, err = readItems(d, 10, name, func(coll *ole.IDispatch, i int) (string, error) {
		if i == 3 {
			return "", bad
		}
		return item(coll, i)
	})
	if !errors.Is(err, bad) || err.Error() != "entry 3: not a string" {
		t.Errorf("failing item: %v, want %q", err, "entry 3: not a string")
	}
}
