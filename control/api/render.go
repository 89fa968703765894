package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

const apiVersion = "2010-04-01"

// v1 times are ISO 8601 (UTC, seconds); 2010 times RFC 2822.
func v1Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func rfc2822(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func rfc2822p(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc2822(t)
	return &s
}

// nz is nil for "" (JSON null), else &s.
func nz(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// v1Meta is Trunking v1's paging block.
type v1Meta struct {
	Page            int     `json:"page"`
	PageSize        int     `json:"page_size"`
	FirstPageURL    string  `json:"first_page_url"`
	PreviousPageURL *string `json:"previous_page_url"`
	URL             string  `json:"url"`
	NextPageURL     *string `json:"next_page_url"`
	Key             string  `json:"key"`
}

// pageQuery builds a list URL's query: the filters, PageSize, Page and
// (when set) PageToken.
func pageQuery(filters url.Values, size, page int, token string) string {
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	q.Set("PageSize", strconv.Itoa(size))
	q.Set("Page", strconv.Itoa(page))
	if token != "" {
		q.Set("PageToken", token)
	}
	return q.Encode()
}

// writeResult answers a handler's store call: err, or v rendered with
// status.
func writeResult[T, J any](w http.ResponseWriter, status int, render func(T) J, v T, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, status, render(v))
	return nil
}

// noContent answers a DELETE: err, or 204 without a body.
func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listPage serves a list endpoint: it reads the paging parameters, gets
// one page from list and writes it under key (writePage), filters in its
// paging URLs. The list handlers differ only in what they pass it.
func listPage[T, J any](w http.ResponseWriter, r *request, key string, filters url.Values, list func(store.Page) ([]T, string, error), render func(T) J) error {
	pr := r.form.page()
	if r.form.err != nil {
		return r.form.err
	}
	items, next, err := list(pr.Page)
	if err != nil {
		return err
	}
	writePage(w, r, key, pr, items, next, filters, render)
	return nil
}

// writePage renders one page of items, each through render (see writeList).
func writePage[T, J any](w http.ResponseWriter, r *request, key string, pr pageReq, items []T, next string, filters url.Values, render func(T) J) {
	out := make([]J, 0, len(items))
	for _, x := range items {
		out = append(out, render(x))
	}
	r.writeList(w, key, out, len(out), pr, next, filters)
}

// writeList renders one page of a list: v1 with a "meta" block of absolute
// URLs, 2010 with top-level relative URIs. items must be a slice (an empty
// one renders as []).
func (r *request) writeList(w http.ResponseWriter, key string, items any, n int, pr pageReq, next string, filters url.Values) {
	path := r.URL.Path
	cur := pageQuery(filters, pr.Size, pr.num, pr.Token)
	first := pageQuery(filters, pr.Size, 0, "")
	var prev, nxt *string
	if pr.num > 0 {
		s := pageQuery(filters, pr.Size, pr.num-1, "")
		prev = &s
	}
	if next != "" {
		s := pageQuery(filters, pr.Size, pr.num+1, next)
		nxt = &s
	}
	if !strings.HasPrefix(path, "/2010-04-01/") {
		abs := func(q *string) *string {
			if q == nil {
				return nil
			}
			s := r.base + path + "?" + *q
			return &s
		}
		writeJSON(w, http.StatusOK, map[string]any{
			key: items,
			"meta": v1Meta{Page: pr.num, PageSize: pr.Size, FirstPageURL: r.base + path + "?" + first,
				PreviousPageURL: abs(prev), URL: r.base + path + "?" + cur, NextPageURL: abs(nxt), Key: key},
		})
		return
	}
	rel := func(q *string) *string {
		if q == nil {
			return nil
		}
		s := path + "?" + *q
		return &s
	}
	start := pr.num * pr.Size
	end := start + n - 1
	if n == 0 {
		end = start
	}
	writeJSON(w, http.StatusOK, map[string]any{
		key:                 items,
		"first_page_uri":    path + "?" + first,
		"previous_page_uri": rel(prev),
		"next_page_uri":     rel(nxt),
		"uri":               path + "?" + cur,
		"page":              pr.num,
		"page_size":         pr.Size,
		"start":             start,
		"end":               end,
	})
}
