package collect

import (
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// wuaCriteria asks the Windows Update Agent for the updates that apply to
// the machine and are neither installed nor hidden by an administrator:
// what Settings › Windows Update would offer.
const wuaCriteria = "IsInstalled=0 and IsHidden=0"

// wuaUpdate is what the updates collector reads of one IUpdate. The
// field names are the COM properties' (Identity.UpdateID flattened), so
// a search captured with PowerShell's ConvertTo-Json decodes into it.
type wuaUpdate struct {
	Title        string
	UpdateID     string
	KBArticleIDs []string
	MsrcSeverity string
	Categories   []wuaCategory
}

// wuaCategory is one of an update's categories: its product ("Windows 10,
// version 1903 and later") and its classification ("Security Updates").
type wuaCategory struct {
	Name       string
	CategoryID string
	Type       string
}

// securityUpdatesCategory is the CategoryID of the "Security Updates"
// classification. Category names are localised ("Sicherheitsupdates"),
// their IDs are not.
const securityUpdatesCategory = "0fa1201d-4330-4fa8-8ae9-b877473b6441"

// Bounds on what the updates collector reports. A machine that has not
// been patched for a year has a few dozen pending updates.
const (
	maxWUAUpdates   = 1_000
	maxUpdateTitle  = 256
	maxKBArticles   = 8  // KB numbers read per update
	maxWUACategory  = 16 // categories read per update
	maxUpdateIDText = 64
)

// msrcSeverities are the MSRC ratings, by rank.
var msrcSeverities = []string{"Low", "Moderate", "Important", "Critical"}

// pendingFromWUA maps a search's updates to the snapshot's pending
// updates:
//
//   - ID is "KB" and the first KB article number ("KB5034441"); an update
//     without one (drivers, some feature updates) is named by its
//     UpdateID, a GUID; one with neither is left out.
//   - Title is the update's title; Severity its MsrcSeverity, one of
//     Critical, Important, Moderate and Low (other words are kept,
//     cleaned and bounded).
//   - Security is true when the update is classified "Security Updates"
//     (by category ID, as names are localised, or by that name) or carries an MSRC
//     severity: Microsoft rates only security fixes. Definition updates
//     for Defender are not security updates in this sense: they carry
//     neither.
//   - Source is "windows-update".
//
// Updates with the same ID (IDs compare case-insensitively, as the broker
// keys them) are merged: the first title is kept, Security if either is,
// the higher severity. The result keeps the search's order and holds at
// most maxWUAUpdates, no more than fit in maxUpdatesJSON; total is how
// many distinct updates there were.
func pendingFromWUA(ups []wuaUpdate) (pending []wire.PendingUpdate, total int) {
	pending = []wire.PendingUpdate{}
	index := make(map[string]int) // ID → position, of the updates kept
	seen := make(map[string]bool)
	size, full := 0, false
	for _, u := range ups {
		p, ok := pendingUpdate(u)
		if !ok {
			continue
		}
		key := strings.ToLower(p.ID)
		if i, kept := index[key]; kept {
			pending[i] = mergePending(pending[i], p)
			continue
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		total++
		if full = full || len(pending) == maxWUAUpdates || size+jsonLen(p) > maxUpdatesJSON; full {
			continue
		}
		size += jsonLen(p)
		index[key] = len(pending)
		pending = append(pending, p)
	}
	return pending, total
}

// pendingUpdate maps one update; ok is false when it has no usable ID.
func pendingUpdate(u wuaUpdate) (wire.PendingUpdate, bool) {
	id := kbID(u.KBArticleIDs)
	if id == "" {
		id = cleanText(u.UpdateID, maxUpdateIDText)
	}
	if id == "" {
		return wire.PendingUpdate{}, false
	}
	sev := severity(u.MsrcSeverity)
	return wire.PendingUpdate{
		ID:       id,
		Source:   "windows-update",
		Title:    cleanText(u.Title, maxUpdateTitle),
		Severity: sev,
		Security: sev != "" || securityClassified(u.Categories),
	}, true
}

// kbID returns "KB" and the first KB article number among ids (WUA gives
// the digits alone; a leading "KB" is accepted), or "" if none is one.
func kbID(ids []string) string {
	for _, id := range ids[:min(len(ids), maxKBArticles)] {
		id = strings.TrimSpace(id)
		if len(id) > 2 && strings.EqualFold(id[:2], "KB") {
			id = id[2:]
		}
		if allDigits(id) && len(id) <= 10 {
			return "KB" + id
		}
	}
	return ""
}

// severity returns the canonical spelling of an MSRC rating, or the
// cleaned text of one it does not know.
func severity(s string) string {
	s = cleanText(s, 32)
	for _, known := range msrcSeverities {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	return s
}

func severityRank(s string) int {
	for i, known := range msrcSeverities {
		if s == known {
			return i + 1
		}
	}
	if s != "" {
		return 0 // an unknown rating ranks below the known ones, above none
	}
	return -1
}

// securityClassified reports whether one of the categories is the
// "Security Updates" classification, by ID or, on an English system, by
// name.
func securityClassified(cats []wuaCategory) bool {
	for _, c := range cats[:min(len(cats), maxWUACategory)] {
		if strings.EqualFold(strings.Trim(c.CategoryID, "{} "), securityUpdatesCategory) ||
			strings.EqualFold(strings.TrimSpace(c.Name), "Security Updates") {
			return true
		}
	}
	return false
}

// mergePending merges b, an update with a's ID, into a.
func mergePending(a, b wire.PendingUpdate) wire.PendingUpdate {
	a.Security = a.Security || b.Security
	if severityRank(b.Severity) > severityRank(a.Severity) {
		a.Severity = b.Severity
	}
	if a.Title == "" {
		a.Title = b.Title
	}
	return a
}
