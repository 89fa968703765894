package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/xtrunk/xtrunk/control/store"
)

// params are a request's parameters: the form-encoded body of a POST, the
// query string otherwise. Accessors record the first bad value in err;
// a handler reads what it needs and then checks err once.
type params struct {
	v   url.Values
	err error
}

func readForm(w http.ResponseWriter, hr *http.Request) (params, error) {
	raw := hr.URL.RawQuery
	if hr.Method == http.MethodPost {
		if ct := hr.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || mt != "application/x-www-form-urlencoded" {
				return params{}, &Error{Status: http.StatusUnsupportedMediaType, Code: store.CodeInvalidParameter,
					Message: "Content-Type must be application/x-www-form-urlencoded"}
			}
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return params{}, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "Request body too large"}
			}
			return params{}, badRequest("Could not read the request body")
		}
		raw = string(b)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return params{}, badRequest("Malformed form data")
	}
	return params{v: v}, nil
}

func (p *params) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// has reports whether name was sent (even empty).
func (p *params) has(name string) bool {
	_, ok := p.v[name]
	return ok
}

// str returns name's value if sent; it must be text of at most max
// characters (max 0: no limit beyond MaxBody).
func (p *params) str(name string, max int) (string, bool) {
	vs, ok := p.v[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	if err := store.CheckText(name, vs[0], max); err != nil {
		p.fail(err)
		return "", false
	}
	return vs[0], true
}

// setStr sets *dst from name if sent.
func (p *params) setStr(dst *string, name string, max int) {
	if v, ok := p.str(name, max); ok {
		*dst = v
	}
}

func (p *params) setBool(dst *bool, name string) {
	v, ok := p.str(name, 16)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(badRequest("%s must be true or false", name))
		return
	}
	*dst = b
}

func (p *params) setInt(dst *int, name string) {
	v, ok := p.str(name, 16)
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		p.fail(badRequest("%s must be an integer", name))
		return
	}
	*dst = n
}

// required returns name's value and records an error when it is missing or
// empty.
func (p *params) required(name string, max int) string {
	v, ok := p.str(name, max)
	if !ok && p.err == nil {
		p.fail(badRequest("Missing required parameter %s in the post body", name))
	}
	if ok && v == "" {
		p.fail(badRequest("Required parameter %s must not be empty", name))
	}
	return v
}

// sid reads a required sid parameter with the given prefix.
func (p *params) sid(name, prefix string) string {
	v := p.required(name, 64)
	if v != "" && !store.ValidSid(prefix, v) {
		p.fail(badRequest("%s must be %s followed by 32 hex digits", name, prefix))
	}
	return v
}

// pageReq is a list request's paging.
type pageReq struct {
	store.Page
	num int // Page
}

const maxOffset = 10_000_000

func (p *params) page() pageReq {
	pr := pageReq{Page: store.Page{Size: store.DefaultPageSize}}
	p.setInt(&pr.Size, "PageSize")
	p.setInt(&pr.num, "Page")
	p.setStr(&pr.Token, "PageToken", 64)
	if pr.Size < 1 || pr.Size > store.MaxPageSize {
		p.fail(badRequest("PageSize must be 1-%d", store.MaxPageSize))
	}
	if pr.num < 0 || pr.num > maxOffset || pr.num*pr.Size > maxOffset {
		p.fail(badRequest("Page is out of range"))
	}
	if pr.Token != "" && !store.ValidPageToken(pr.Token) {
		p.fail(badRequest("PageToken is invalid"))
	}
	if pr.Token == "" {
		pr.Offset = pr.num * pr.Size
	}
	return pr
}
