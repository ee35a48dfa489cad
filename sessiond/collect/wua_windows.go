package collect

import (
	"errors"
	"fmt"
	"runtime"

	ole "github.com/go-ole/go-ole"
	"github.com/go-ole/go-ole/oleutil"
)

// comSearcher searches with the Windows Update Agent's automation API
// (wuapi: IUpdateSession, IUpdateSearcher), the one PowerShell scripts
// use. Each search runs on its own locked OS thread with COM initialised
// for that thread, multithreaded, so no message loop is needed.
type comSearcher struct {
	// clientID names the agent to Windows Update, which logs it with
	// every search (ClientApplicationID).
	clientID string
}

var _ updateSearcher = comSearcher{}

// WUA result codes (OperationResultCode).
const (
	orcSucceeded           = 2
	orcSucceededWithErrors = 3
	orcFailed              = 4
	orcAborted             = 5
)

// Codes CoInitializeEx may return that are not failures for us.
const (
	sFalse          = 0x00000001 // COM was already initialised on this thread
	rpcEChangedMode = 0x80010106 // initialised in the other threading model
)

// Search implements updateSearcher.
func (c comSearcher) Search(criteria string) ([]wuaUpdate, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	uninit, err := comInit()
	if err != nil {
		return nil, err
	}
	if uninit {
		defer ole.CoUninitialize()
	}
	session, err := createDispatch("Microsoft.Update.Session")
	if err != nil {
		return nil, err
	}
	defer session.Release()
	if c.clientID != "" {
		if v, err := oleutil.PutProperty(session, "ClientApplicationID", c.clientID); err == nil {
			v.Clear()
		}
	}
	searcher, err := callDispatch(session, "CreateUpdateSearcher")
	if err != nil {
		return nil, err
	}
	defer searcher.Release()
	result, err := callDispatch(searcher, "Search", criteria)
	if err != nil {
		return nil, err
	}
	defer result.Release()
	return readSearchResult(result)
}

// comInit initialises COM on the calling (locked) thread. uninit says
// whether the caller must call CoUninitialize.
func comInit() (uninit bool, err error) {
	err = ole.CoInitializeEx(0, ole.COINIT_MULTITHREADED)
	var oe *ole.OleError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &oe) && oe.Code() == sFalse:
		return true, nil
	case errors.As(err, &oe) && oe.Code() == rpcEChangedMode:
		return false, nil
	}
	return false, fmt.Errorf("CoInitializeEx: %w", err)
}

// readSearchResult reads an ISearchResult.
func readSearchResult(result *ole.IDispatch) ([]wuaUpdate, error) {
	code, err := getInt(result, "ResultCode")
	if err != nil {
		return nil, err
	}
	switch code {
	case orcSucceeded, orcSucceededWithErrors:
	case orcFailed:
		return nil, errors.New("search failed (result code 4)")
	case orcAborted:
		return nil, errors.New("search aborted (result code 5)")
	default:
		return nil, fmt.Errorf("search ended with result code %d", code)
	}
	// One more than reported, so the mapping can tell there were more.
	return collection(result, "Updates", maxWUAUpdates+1, func(i int) string { return fmt.Sprintf("update %d", i) }, readUpdateAt)
}

// readUpdateAt reads the IUpdate at index i of an IUpdateCollection.
func readUpdateAt(coll *ole.IDispatch, i int) (wuaUpdate, error) {
	item, err := getDispatch(coll, "Item", i)
	if err != nil {
		return wuaUpdate{}, err
	}
	defer item.Release()
	var u wuaUpdate
	if u.Title, err = getString(item, "Title"); err != nil {
		return u, err
	}
	if u.MsrcSeverity, err = getString(item, "MsrcSeverity"); err != nil {
		return u, err
	}
	if u.UpdateID, err = updateID(item); err != nil {
		return u, err
	}
	if u.KBArticleIDs, err = stringCollection(item, "KBArticleIDs", maxKBArticles); err != nil {
		return u, err
	}
	u.Categories, err = categories(item)
	return u, err
}

// updateID reads Identity.UpdateID.
func updateID(item *ole.IDispatch) (string, error) {
	ident, err := getDispatch(item, "Identity")
	if err != nil {
		return "", err
	}
	defer ident.Release()
	return getString(ident, "UpdateID")
}

// stringCollection reads up to max strings of the IStringCollection
// property name.
func stringCollection(item *ole.IDispatch, name string, max int) ([]string, error) {
	return collection(item, name, max, func(int) string { return name }, func(coll *ole.IDispatch, i int) (string, error) {
		return getString(coll, "Item", i)
	})
}

// categories reads up to maxWUACategory of an update's categories.
func categories(item *ole.IDispatch) ([]wuaCategory, error) {
	return collection(item, "Categories", maxWUACategory, func(i int) string { return fmt.Sprintf("category %d", i) }, categoryAt)
}

// collection reads up to limit items of d's collection property name
// (an IUpdateCollection, IStringCollection or ICategoryCollection), as
// readItems does.
func collection[T any](d *ole.IDispatch, name string, limit int, what func(i int) string,
	read func(coll *ole.IDispatch, i int) (T, error)) ([]T, error) {
	coll, err := getDispatch(d, name)
	if err != nil {
		return nil, err
	}
	defer coll.Release()
	return readItems(coll, limit, what, read)
}

// readItems reads the first limit items of coll, a WUA collection (Count
// and Item(i)), one by one with read. An item's error is wrapped with
// what(i), which names it.
func readItems[T any](coll *ole.IDispatch, limit int, what func(i int) string,
	read func(coll *ole.IDispatch, i int) (T, error)) ([]T, error) {
	n, err := getInt(coll, "Count")
	if err != nil {
		return nil, err
	}
	n = min(n, limit)
	out := make([]T, 0, n)
	for i := range n {
		v, err := read(coll, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what(i), err)
		}
		out = append(out, v)
	}
	return out, nil
}

func categoryAt(coll *ole.IDispatch, i int) (wuaCategory, error) {
	cat, err := getDispatch(coll, "Item", i)
	if err != nil {
		return wuaCategory{}, err
	}
	defer cat.Release()
	var c wuaCategory
	if c.Name, err = getString(cat, "Name"); err != nil {
		return c, err
	}
	if c.CategoryID, err = getString(cat, "CategoryID"); err != nil {
		return c, err
	}
	c.Type, err = getString(cat, "Type")
	return c, err
}

// createDispatch creates the COM object progID and returns its IDispatch.
func createDispatch(progID string) (*ole.IDispatch, error) {
	unk, err := oleutil.CreateObject(progID)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", progID, err)
	}
	defer unk.Release()
	disp, err := unk.QueryInterface(ole.IID_IDispatch)
	if err != nil {
		return nil, fmt.Errorf("%s: IDispatch: %w", progID, err)
	}
	return disp, nil
}

// callDispatch calls a method that returns an object. The caller releases
// it.
func callDispatch(d *ole.IDispatch, method string, args ...any) (*ole.IDispatch, error) {
	v, err := oleutil.CallMethod(d, method, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return variantDispatch(v, method)
}

// getDispatch reads a property that is an object. The caller releases it.
func getDispatch(d *ole.IDispatch, name string, args ...any) (*ole.IDispatch, error) {
	v, err := oleutil.GetProperty(d, name, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return variantDispatch(v, name)
}

// variantDispatch takes the object out of v, which it owns from then on.
func variantDispatch(v *ole.VARIANT, name string) (*ole.IDispatch, error) {
	disp := v.ToIDispatch()
	if disp == nil {
		v.Clear()
		return nil, fmt.Errorf("%s: not an object (variant type %d)", name, v.VT)
	}
	return disp, nil
}

// getString reads a string property; an empty or null one reads as "".
func getString(d *ole.IDispatch, name string, args ...any) (string, error) {
	v, err := oleutil.GetProperty(d, name, args...)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	defer v.Clear()
	switch v.VT {
	case ole.VT_BSTR:
		return v.ToString(), nil
	case ole.VT_EMPTY, ole.VT_NULL:
		return "", nil
	}
	return "", fmt.Errorf("%s: not a string (variant type %d)", name, v.VT)
}

// getInt reads an integer property.
func getInt(d *ole.IDispatch, name string) (int, error) {
	v, err := oleutil.GetProperty(d, name)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer v.Clear()
	switch x := v.Value().(type) {
	case int32:
		return max(int(x), 0), nil
	case int16:
		return max(int(x), 0), nil
	case uint32:
		return int(min(x, 1<<30)), nil
	case int64:
		return int(min(max(x, 0), 1<<30)), nil
	}
	return 0, fmt.Errorf("%s: not an integer (variant type %d)", name, v.VT)
}
