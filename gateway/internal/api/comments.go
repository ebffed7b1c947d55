package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/gateway/internal/store"
	"github.com/commentflow/commentflow/gateway/internal/stream"
)

const (
	listPath = "/api/v1/comments"
	itemPath = "/api/v1/comments/{id}"

	jsonType = "application/json"

	// Lists change as comments arrive: cache, but revalidate (ETag).
	listCacheControl = "no-cache"
	// A comment never changes once stored.
	itemCacheControl = "public, max-age=300"
)

// Comment is a comment in the API's JSON.
type Comment struct {
	ID         string `json:"id"`
	PostID     string `json:"post_id"`
	Name       string `json:"name"`
	Text       string `json:"text"`
	Address    string `json:"address"`
	CreatedAt  string `json:"created_at"`
	IngestedAt string `json:"ingested_at"`
	TraceID    string `json:"trace_id,omitempty"`
}

// Page is one page of the comment list in the API's JSON.
type Page struct {
	Items      []Comment `json:"items"`
	Limit      int64     `json:"limit"`
	Offset     int64     `json:"offset"`
	NextCursor *string   `json:"next_cursor"`
	Total      *int64    `json:"total,omitempty"`
}

// TimeFormat renders instants: RFC 3339, UTC, milliseconds; the stream's
// comments use the same.
const TimeFormat = stream.TimeFormat

func toJSON(c store.Comment) Comment {
	return Comment{
		ID: c.ID, PostID: c.PostID, Name: c.Name, Text: c.Text, Address: c.Address,
		CreatedAt:  c.CreatedAt.UTC().Format(TimeFormat),
		IngestedAt: c.IngestedAt.UTC().Format(TimeFormat),
		TraceID:    c.TraceID,
	}
}

// listParams are the typed, validated parameters of a list request, as
// the list decoder makes them. Only these reach the store.
type listParams struct {
	filter       store.Filter
	limit        int64
	offset       int64
	after        *store.Position
	includeTotal bool
}

// itemParams are the typed, validated parameters of an item request.
type itemParams struct {
	id string // a UUID in canonical lower case, as ids are stored
}

// scope renders the filters canonically; cursors are bound to it.
func scope(f store.Filter) string {
	t := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.UTC().Format(time.RFC3339Nano)
	}
	return "post_id=" + strconv.Quote(f.PostID) + "&name=" + strconv.Quote(f.Name) +
		"&since=" + strconv.Quote(t(f.Since)) + "&until=" + strconv.Quote(t(f.Until))
}

// listDecoder returns the decoder of the list operation. The defaults
// come from the spec; the bounds are the spec's alone (validated enforces
// them before the decoder runs). It checks only what the spec cannot
// express: since after until, cursor with offset, and the cursor's
// signature and scope.
func (s *server) listDecoder(route *routers.Route) (decoder[listParams], error) {
	if err := declared(route, openapi3.ParameterInQuery, "cursor", "post_id", "name", "since", "until"); err != nil {
		return nil, err
	}
	defLimit, err := intDefault(route, "limit")
	if err != nil {
		return nil, err
	}
	defOffset, err := intDefault(route, "offset")
	if err != nil {
		return nil, err
	}
	defTotal, err := boolDefault(route, "include_total")
	if err != nil {
		return nil, err
	}
	return func(in input) (listParams, []ParameterError) {
		q := in.query
		p := listParams{limit: defLimit, offset: defOffset, includeTotal: defTotal}
		var errs []ParameterError
		bad := func(name, reason string) {
			errs = append(errs, ParameterError{Parameter: name, In: "query", Reason: reason})
		}
		// The values passed the spec's schemas, so these conversions
		// succeed; the errors only guard against a spec and decoder drifting apart.
		intParam := func(name string, dst *int64) {
			if v := q.Get(name); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					bad(name, "must be an integer")
					return
				}
				*dst = n
			}
		}
		timeParam := func(name string) *time.Time {
			v := q.Get(name)
			if v == "" {
				return nil
			}
			t, err := parseDateTime(v)
			if err != nil {
				bad(name, err.Error())
				return nil
			}
			return &t
		}
		intParam("limit", &p.limit)
		intParam("offset", &p.offset)
		p.filter.PostID = strings.ToLower(q.Get("post_id")) // ids are stored in canonical lower case
		p.filter.Name = q.Get("name")
		p.filter.Since = timeParam("since")
		p.filter.Until = timeParam("until")
		if p.filter.Since != nil && p.filter.Until != nil && p.filter.Until.Before(*p.filter.Since) {
			bad("until", "must not be before since")
		}
		if v := q.Get("include_total"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad("include_total", "must be a boolean (true or false)")
			}
			p.includeTotal = b
		}
		if tok := q.Get("cursor"); tok != "" {
			if p.offset > 0 {
				bad("cursor", "cannot be combined with offset; use one pagination style")
			}
			pos, err := s.cursors.Decode(tok, scope(p.filter))
			switch {
			case errors.Is(err, cursor.ErrScope):
				bad("cursor", "was issued for other filters (post_id, name, since, until); repeat them unchanged or start without a cursor")
			case err != nil:
				bad("cursor", "is not a cursor this server issued (malformed, edited or expired by a restart)")
			default:
				p.after = &store.Position{CreatedAt: pos.CreatedAt, ID: pos.ID}
			}
		}
		return p, errs
	}, nil
}

// itemDecoder returns the decoder of the item operation: the spec checked
// that id is a UUID (its format validator, the one check); the decoder
// only canonicalizes it.
func itemDecoder(route *routers.Route) (decoder[itemParams], error) {
	if err := declared(route, openapi3.ParameterInPath, "id"); err != nil {
		return nil, err
	}
	return func(in input) (itemParams, []ParameterError) {
		return itemParams{id: strings.ToLower(in.path["id"])}, nil
	}, nil
}

// listComments answers a list request with its decoded parameters.
func (s *server) listComments(w http.ResponseWriter, r *http.Request, p listParams) {
	ctx, cancel := context.WithTimeout(r.Context(), s.dbTimeout)
	defer cancel()

	type counted struct {
		n   int64
		err error
	}
	var countc chan counted
	if p.includeTotal {
		countc = make(chan counted, 1)
		go func() {
			n, err := s.store.Count(ctx, p.filter)
			countc <- counted{n, err}
		}()
	}
	// One more than a page tells whether a next page exists.
	rows, err := s.store.List(ctx, store.Query{Filter: p.filter, After: p.after, Offset: p.offset, Limit: p.limit + 1})
	if err != nil {
		cancel()
		if countc != nil {
			<-countc
		}
		s.dbFailed(w, r, "list comments", err)
		return
	}
	page := Page{Items: make([]Comment, 0, min(int64(len(rows)), p.limit)), Limit: p.limit, Offset: p.offset}
	if int64(len(rows)) > p.limit {
		rows = rows[:p.limit]
		last := rows[len(rows)-1]
		next := s.cursors.Encode(cursor.Position{CreatedAt: last.CreatedAt, ID: last.ID}, scope(p.filter))
		page.NextCursor = &next
		w.Header().Set("Link", "<"+nextURL(p, next)+`>; rel="next"`)
	}
	for _, c := range rows {
		page.Items = append(page.Items, toJSON(c))
	}
	if countc != nil {
		c := <-countc
		if c.err != nil {
			w.Header().Del("Link")
			s.dbFailed(w, r, "count comments", c.err)
			return
		}
		page.Total = &c.n
	}
	body, err := encodeJSON(page)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encode page", "err", err)
		internalError(w, r)
		return
	}
	writeCacheable(w, r, jsonType, listCacheControl, body)
}

// nextURL is the relative URL of the next page: the same filters, limit
// and include_total, and the cursor.
func nextURL(p listParams, next string) string {
	q := url.Values{}
	q.Set("cursor", next)
	q.Set("limit", strconv.FormatInt(p.limit, 10))
	if p.filter.PostID != "" {
		q.Set("post_id", p.filter.PostID)
	}
	if p.filter.Name != "" {
		q.Set("name", p.filter.Name)
	}
	if p.filter.Since != nil {
		q.Set("since", p.filter.Since.UTC().Format(time.RFC3339Nano))
	}
	if p.filter.Until != nil {
		q.Set("until", p.filter.Until.UTC().Format(time.RFC3339Nano))
	}
	if p.includeTotal {
		q.Set("include_total", "true")
	}
	return listPath + "?" + q.Encode()
}

// getComment answers an item request with its decoded parameters.
func (s *server) getComment(w http.ResponseWriter, r *http.Request, p itemParams) {
	id := p.id
	ctx, cancel := context.WithTimeout(r.Context(), s.dbTimeout)
	defer cancel()
	c, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound(w, r, "No comment has id "+id+".")
		return
	}
	if err != nil {
		s.dbFailed(w, r, "get comment", err)
		return
	}
	body, err := encodeJSON(toJSON(c))
	if err != nil {
		s.log.ErrorContext(r.Context(), "encode comment", "err", err)
		internalError(w, r)
		return
	}
	writeCacheable(w, r, jsonType, itemCacheControl, body)
}

// dbFailed answers a failed database operation: 503 when the database is
// unreachable or slow (retryable), 500 otherwise.
func (s *server) dbFailed(w http.ResponseWriter, r *http.Request, op string, err error) {
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		s.log.DebugContext(r.Context(), op+": request canceled", "err", err)
		unavailable(w, r, "The request was canceled.")
		return
	}
	if store.Unavailable(err) {
		s.log.WarnContext(r.Context(), op+": database unavailable", "err", err)
		unavailable(w, r, "The database is unreachable or did not answer in time.")
		return
	}
	s.log.ErrorContext(r.Context(), op, "err", err)
	internalError(w, r)
}
