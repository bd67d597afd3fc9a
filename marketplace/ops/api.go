package ops

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Page sizes of the API's lists.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// errNoReporter is answered (404) by the usage routes of a Handler without
// a Reporter.
var errNoReporter = fmt.Errorf("usage reporting is not configured: %w", marketplace.ErrNotFound)

// errBadRequest marks a request the API cannot take (400).
var errBadRequest = errors.New("bad request")

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    int    `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// statusNames are the Google API status names of the HTTP codes the API
// answers with.
var statusNames = map[int]string{
	http.StatusBadRequest: "INVALID_ARGUMENT", http.StatusUnauthorized: "UNAUTHENTICATED",
	http.StatusForbidden: "PERMISSION_DENIED", http.StatusNotFound: "NOT_FOUND",
	http.StatusConflict: "ABORTED", http.StatusMethodNotAllowed: "METHOD_NOT_ALLOWED",
	http.StatusInternalServerError: "INTERNAL", http.StatusServiceUnavailable: "UNAVAILABLE",
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: errorJSON{Code: code, Status: statusNames[code], Message: msg}})
}

// errorCode maps an SDK error to the HTTP code the API answers with.
func errorCode(err error) int {
	switch {
	case errors.Is(err, marketplace.ErrNotFound), errors.Is(err, marketplace.ErrNotQueued),
		errors.Is(err, usage.ErrUnknownConsumer):
		return http.StatusNotFound
	case errors.Is(err, marketplace.ErrNoLongerPending):
		return http.StatusConflict
	case errors.Is(err, marketplace.ErrInvalid), errors.Is(err, usage.ErrInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, marketplace.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (h *Handler) apiError(w http.ResponseWriter, err error) {
	writeError(w, errorCode(err), err.Error())
}

// pageOf cuts one page out of items, sorted by the caller, with
// offset-based page tokens.
func pageOf[T any](r *http.Request, items []T) ([]T, string, error) {
	size, err := pageSize(r)
	if err != nil {
		return nil, "", err
	}
	off := 0
	if tok := r.URL.Query().Get("pageToken"); tok != "" {
		if off, err = decodeOffset(tok); err != nil {
			return nil, "", err
		}
	}
	if off > len(items) {
		off = len(items)
	}
	end := min(off+size, len(items))
	next := ""
	if end < len(items) {
		next = encodeOffset(end)
	}
	page := items[off:end]
	if page == nil {
		page = []T{}
	}
	return page, next, nil
}

func pageSize(r *http.Request) (int, error) {
	s := r.URL.Query().Get("pageSize")
	if s == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("pageSize %q: %w", s, errBadRequest)
	}
	if n == 0 {
		return defaultPageSize, nil
	}
	return min(n, maxPageSize), nil
}

func encodeOffset(off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(off)))
}

// decodeOffset parses a page token of encodeOffset.
func decodeOffset(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != 'o' {
		return 0, fmt.Errorf("bad pageToken: %w", errBadRequest)
	}
	n, err := strconv.Atoi(string(b[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad pageToken: %w", errBadRequest)
	}
	return n, nil
}

// encodeKey and decodeKey make the page token of a window listing, which
// pages by usage.WindowKey.
func encodeKey(k usage.WindowKey) string {
	if k.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("k" + strconv.FormatInt(k.Start.UnixNano(), 10) + " " + k.OperationID))
}

func decodeKey(tok string) (usage.WindowKey, error) {
	if tok == "" {
		return usage.WindowKey{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	bad := fmt.Errorf("bad pageToken: %w", errBadRequest)
	if err != nil || len(b) < 2 || b[0] != 'k' {
		return usage.WindowKey{}, bad
	}
	ns, op, ok := strings.Cut(string(b[1:]), " ")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || op == "" {
		return usage.WindowKey{}, bad
	}
	return usage.WindowKey{Start: time.Unix(0, n).UTC(), OperationID: op}, nil
}

// listJSON writes one page of items under key.
func listJSON[T any](w http.ResponseWriter, r *http.Request, key string, items []T) {
	page, next, err := pageOf(r, items)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{key: page, "nextPageToken": next})
}

// readForm parses a POST's parameters: a JSON object body (for the API)
// or a form.
func readForm(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
		if err := dec.Decode(&out); err != nil {
			return nil, fmt.Errorf("body: %v: %w", err, errBadRequest)
		}
		return out, nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("form: %v: %w", err, errBadRequest)
	}
	for k := range r.PostForm {
		out[k] = r.PostForm.Get(k)
	}
	return out, nil
}
