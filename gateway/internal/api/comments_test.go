package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
	"github.com/commentflow/commentflow/gateway/internal/store"
)

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

func TestListFirstPage(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	page, res := getPage(t, h, "/api/v1/comments")

	if got, want := ids(page.Items), storeIDs(seeded[:20]); !slices.Equal(got, want) {
		t.Fatalf("default page:\n got %v\nwant %v", got, want)
	}
	if page.Limit != 20 || page.Offset != 0 || page.Total != nil {
		t.Errorf("limit %d offset %d total %v, want 20, 0, absent", page.Limit, page.Offset, page.Total)
	}
	if strings.Contains(string(res.Body), `"total"`) {
		t.Errorf("total present without include_total: %s", res.Body)
	}
	first := seeded[0]
	want := api.Comment{
		ID: first.ID, PostID: first.PostID, Name: first.Name, Text: first.Text, Address: first.Address,
		CreatedAt: first.CreatedAt.Format("2006-01-02T15:04:05.000Z"), IngestedAt: first.IngestedAt.Format("2006-01-02T15:04:05.000Z"),
		TraceID: first.TraceID,
	}
	if page.Items[0] != want {
		t.Errorf("first item\n got %+v\nwant %+v", page.Items[0], want)
	}
	if page.NextCursor == nil {
		t.Fatal("no next_cursor on a page with a successor")
	}
	m := linkRE.FindStringSubmatch(res.Header.Get("Link"))
	if m == nil {
		t.Fatalf("Link header %q", res.Header.Get("Link"))
	}
	u, err := url.Parse(m[1])
	if err != nil || u.Path != "/api/v1/comments" || u.Query().Get("cursor") != *page.NextCursor || u.Query().Get("limit") != "20" {
		t.Errorf("Link %q does not lead to the next page with cursor %q", m[1], *page.NextCursor)
	}
	if res.Header.Get("ETag") == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("ETag %q, Cache-Control %q", res.Header.Get("ETag"), res.Header.Get("Cache-Control"))
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	post, name := apitest.Posts[1], apitest.Names[2]
	mid := seeded[len(seeded)/2].CreatedAt
	early := seeded[len(seeded)*3/4].CreatedAt
	// A sub-millisecond bound: "since" rounds up, "until" excludes the
	// millisecond it falls in only from its instant on.
	subMs := mid.Add(500 * time.Microsecond)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name  string
		query url.Values
		keep  func(store.Comment) bool
	}{
		{"none", url.Values{}, func(store.Comment) bool { return true }},
		{"post_id", url.Values{"post_id": {post}}, func(c store.Comment) bool { return c.PostID == post }},
		{"post_id upper case", url.Values{"post_id": {strings.ToUpper(post)}}, func(c store.Comment) bool { return c.PostID == post }},
		{"name", url.Values{"name": {name}}, func(c store.Comment) bool { return c.Name == name }},
		{"name absent", url.Values{"name": {"Nobody"}}, func(store.Comment) bool { return false }},
		{"since", url.Values{"since": {rfc(mid)}}, func(c store.Comment) bool { return !c.CreatedAt.Before(mid) }},
		{"until", url.Values{"until": {rfc(mid)}}, func(c store.Comment) bool { return c.CreatedAt.Before(mid) }},
		{"since sub-ms", url.Values{"since": {rfc(subMs)}}, func(c store.Comment) bool { return !c.CreatedAt.Before(subMs) }},
		{"until sub-ms", url.Values{"until": {rfc(subMs)}}, func(c store.Comment) bool { return c.CreatedAt.Before(subMs) }},
		{"since with offset zone", url.Values{"since": {mid.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339Nano)}},
			func(c store.Comment) bool { return !c.CreatedAt.Before(mid) }},
		{"window", url.Values{"since": {rfc(early)}, "until": {rfc(mid)}},
			func(c store.Comment) bool { return !c.CreatedAt.Before(early) && c.CreatedAt.Before(mid) }},
		{"empty window", url.Values{"since": {rfc(mid)}, "until": {rfc(mid)}}, func(store.Comment) bool { return false }},
		{"all filters", url.Values{"post_id": {post}, "name": {name}, "since": {rfc(early)}},
			func(c store.Comment) bool { return c.PostID == post && c.Name == name && !c.CreatedAt.Before(early) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := where(seeded, tc.keep)
			q := tc.query
			q.Set("limit", "100")
			q.Set("include_total", "true")
			page, _ := getPage(t, h, "/api/v1/comments?"+q.Encode())
			if page.Total == nil || *page.Total != int64(len(want)) {
				t.Errorf("total %v, want %d", page.Total, len(want))
			}
			if got, want := ids(page.Items), storeIDs(want[:min(100, len(want))]); !slices.Equal(got, want) {
				t.Errorf("items\n got %v\nwant %v", got, want)
			}
			if (page.NextCursor != nil) != (len(want) > 100) {
				t.Errorf("next_cursor %v with %d matches", page.NextCursor, len(want))
			}
		})
	}
}

// TestCursorWalkExactlyOnce walks every page with the cursor while new
// comments arrive between pages: every comment present at the start is
// returned exactly once, in order, and newer arrivals do not shift the
// walk.
func TestCursorWalkExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		filter url.Values
		keep   func(store.Comment) bool
	}{
		{"all", url.Values{}, func(store.Comment) bool { return true }},
		{"one post", url.Values{"post_id": {apitest.Posts[0]}}, func(c store.Comment) bool { return c.PostID == apitest.Posts[0] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := apitest.Ctx(t)
			coll := freshCollection(t)
			initial := apitest.Comments(150, 2, newest)
			if err := apitest.Insert(ctx, coll, initial); err != nil {
				t.Fatal(err)
			}
			h := newServer(t, serverOpts{coll: coll})
			want := where(initial, tc.keep)

			seen := map[string]int{}
			var order []store.Comment
			q := tc.filter
			q.Set("limit", "7")
			target := "/api/v1/comments?" + q.Encode()
			byID := map[string]store.Comment{}
			for _, c := range initial {
				byID[c.ID] = c
			}
			for pages := 0; target != ""; pages++ {
				if pages > 100 {
					t.Fatal("walk does not end")
				}
				page, res := getPage(t, h, target)
				for _, c := range page.Items {
					seen[c.ID]++
					order = append(order, byID[c.ID])
				}
				// New comments arrive: newer than everything, and one older
				// than the walk's position (a late arrival).
				late := apitest.Comments(3, uint64(100+pages), newest.Add(time.Duration(pages+1)*time.Minute))
				if len(page.Items) > 0 {
					last := page.Items[len(page.Items)-1]
					at, _ := time.Parse(time.RFC3339Nano, last.CreatedAt)
					late = append(late, apitest.Comments(1, uint64(200+pages), at.Add(-time.Hour))...)
				}
				if err := apitest.Insert(ctx, coll, late); err != nil {
					t.Fatal(err)
				}
				for _, c := range late {
					byID[c.ID] = c
				}
				target = ""
				if link := res.Header.Get("Link"); link != "" {
					m := linkRE.FindStringSubmatch(link)
					if m == nil || page.NextCursor == nil || !strings.Contains(m[1], "cursor="+*page.NextCursor) {
						t.Fatalf("Link %q and next_cursor %v disagree", link, page.NextCursor)
					}
					target = m[1]
				} else if page.NextCursor != nil {
					t.Fatalf("next_cursor %q without a Link header", *page.NextCursor)
				}
			}
			for _, c := range want {
				if seen[c.ID] != 1 {
					t.Errorf("comment %s seen %d times, want once", c.ID, seen[c.ID])
				}
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("comment %s seen %d times", id, n)
				}
				if c := byID[id]; c.CreatedAt.After(newest) {
					t.Errorf("comment %s created after the walk started was returned", id)
				}
			}
			for i := 1; i < len(order); i++ {
				a, b := order[i-1], order[i]
				if !inListOrder(a, b) {
					t.Fatalf("walk out of order at %d: %s %s then %s %s", i, a.CreatedAt, a.ID, b.CreatedAt, b.ID)
				}
			}
		})
	}
}

// inListOrder reports whether a comes strictly before b in list order.
func inListOrder(a, b store.Comment) bool {
	return a.CreatedAt.After(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID > b.ID
}

// TestOffsetPagesMatchDirectQuery: every offset page equals the same
// page read directly with the driver.
func TestOffsetPagesMatchDirectQuery(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	coll := client.Database("commentflow").Collection("comments")
	for _, tc := range []struct {
		name   string
		query  url.Values
		filter store.Filter
	}{
		{"all", url.Values{}, store.Filter{}},
		{"name", url.Values{"name": {apitest.Names[0]}}, store.Filter{Name: apitest.Names[0]}},
	} {
		for _, offset := range []int64{0, 25, 50, 275, 299, 300, 1000} {
			t.Run(fmt.Sprintf("%s/offset=%d", tc.name, offset), func(t *testing.T) {
				q := url.Values{}
				for k, v := range tc.query {
					q[k] = v
				}
				q.Set("limit", "25")
				q.Set("offset", fmt.Sprint(offset))
				page, _ := getPage(t, h, "/api/v1/comments?"+q.Encode())
				cur, err := coll.Find(apitest.Ctx(t), store.FilterDoc(tc.filter, nil),
					options.Find().SetSort(store.Sort).SetSkip(offset).SetLimit(25))
				if err != nil {
					t.Fatal(err)
				}
				var direct []store.Comment
				if err := cur.All(apitest.Ctx(t), &direct); err != nil {
					t.Fatal(err)
				}
				if got, want := ids(page.Items), storeIDs(direct); !slices.Equal(got, want) {
					t.Errorf("offset page\n got %v\nwant %v", got, want)
				}
				if page.Offset != offset {
					t.Errorf("offset %d, want %d", page.Offset, offset)
				}
			})
		}
	}
}

func TestGetComment(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	c := seeded[42]
	var got api.Comment
	res := get(t, h, "/api/v1/comments/"+c.ID)
	if res.Status != http.StatusOK {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	res.json(t, &got)
	if got.ID != c.ID || got.PostID != c.PostID || got.Name != c.Name || got.Text != c.Text ||
		got.CreatedAt != c.CreatedAt.UTC().Format(api.TimeFormat) {
		t.Errorf("got %+v, want %+v", got, c)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	// trace_id leads to the comment's ingestion trace; absent when the
	// consumer did not trace it.
	if got.TraceID == "" || got.TraceID != c.TraceID {
		t.Errorf("trace_id %q, want %q", got.TraceID, c.TraceID)
	}
	if untraced := get(t, h, "/api/v1/comments/"+seeded[43].ID); strings.Contains(string(untraced.Body), "trace_id") {
		t.Errorf("untraced comment has a trace_id: %s", untraced.Body)
	}
	upper := get(t, h, "/api/v1/comments/"+strings.ToUpper(c.ID))
	if upper.Status != http.StatusOK || string(upper.Body) != string(res.Body) {
		t.Errorf("upper-case id: %d %s", upper.Status, upper.Body)
	}

	absent := get(t, h, "/api/v1/comments/00000000-0000-4000-8000-000000000000")
	if absent.Status != http.StatusNotFound {
		t.Fatalf("absent id: %d %s", absent.Status, absent.Body)
	}
	if p := absent.problem(t); p.Type != api.TypeNotFound || p.Instance != "/api/v1/comments/00000000-0000-4000-8000-000000000000" {
		t.Errorf("problem %+v", p)
	}
}

func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	coll := freshCollection(t)
	if err := apitest.Insert(apitest.Ctx(t), coll, apitest.Comments(30, 3, newest)); err != nil {
		t.Fatal(err)
	}
	h := newServer(t, serverOpts{coll: coll})
	for _, target := range []string{"/api/v1/comments?limit=10", "/api/v1/comments/" + apitest.Comments(30, 3, newest)[5].ID, "/api/openapi.json"} {
		first := get(t, h, target)
		etag := first.Header.Get("ETag")
		if first.Status != http.StatusOK || etag == "" {
			t.Fatalf("%s: %d, ETag %q", target, first.Status, etag)
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			res := get(t, h, target, "If-None-Match", inm)
			if res.Status != http.StatusNotModified || len(res.Body) != 0 || res.Header.Get("ETag") != etag {
				t.Errorf("%s If-None-Match %s: %d, %d bytes, ETag %q", target, inm, res.Status, len(res.Body), res.Header.Get("ETag"))
			}
		}
		if res := get(t, h, target, "If-None-Match", `"stale"`); res.Status != http.StatusOK || string(res.Body) != string(first.Body) {
			t.Errorf("%s stale If-None-Match: %d", target, res.Status)
		}
	}
	// A new comment changes the list, so its ETag.
	before := get(t, h, "/api/v1/comments?limit=10")
	if err := apitest.Insert(apitest.Ctx(t), coll, apitest.Comments(1, 4, newest.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	after := get(t, h, "/api/v1/comments?limit=10", "If-None-Match", before.Header.Get("ETag"))
	if after.Status != http.StatusOK || after.Header.Get("ETag") == before.Header.Get("ETag") {
		t.Errorf("after an insert: %d, ETag %q (was %q)", after.Status, after.Header.Get("ETag"), before.Header.Get("ETag"))
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	for _, target := range []string{"/api/v1/comments?limit=3", "/api/v1/comments/" + seeded[0].ID, "/healthz"} {
		g, hd := get(t, h, target), do(t, h, http.MethodHead, target)
		if hd.Status != http.StatusOK || hd.Header.Get("ETag") != g.Header.Get("ETag") || hd.Header.Get("Content-Type") != g.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %v; GET: %v", target, hd.Status, hd.Header, g.Header)
		}
	}
	if res := do(t, h, http.MethodHead, "/api/v1/comments?limit=0"); res.Status != http.StatusBadRequest {
		t.Errorf("HEAD with bad input: %d", res.Status)
	}
}

func TestEmptyCollection(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{coll: freshCollection(t)})
	page, res := getPage(t, h, "/api/v1/comments?include_total=true")
	if len(page.Items) != 0 || page.NextCursor != nil || page.Total == nil || *page.Total != 0 || res.Header.Get("Link") != "" {
		t.Errorf("empty list: %s, Link %q", res.Body, res.Header.Get("Link"))
	}
	if !strings.Contains(string(res.Body), `"items":[]`) || !strings.Contains(string(res.Body), `"next_cursor":null`) {
		t.Errorf("empty list body %s", res.Body)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	for _, tc := range []struct {
		method, target string
		status         int
		typ            string
	}{
		{http.MethodGet, "/api/v2/comments", http.StatusNotFound, api.TypeNotFound},
		{http.MethodGet, "/api/v1/comments/", http.StatusNotFound, api.TypeNotFound},
		{http.MethodGet, "/api/v1/comments/" + seeded[0].ID + "/replies", http.StatusNotFound, api.TypeNotFound},
		{http.MethodGet, "/nowhere", http.StatusNotFound, api.TypeNotFound},
		{http.MethodGet, "/api/openapi/nope.js", http.StatusNotFound, api.TypeNotFound},
		{http.MethodPost, "/api/v1/comments", http.StatusMethodNotAllowed, api.TypeMethodNotAllowed},
		{http.MethodDelete, "/api/v1/comments/" + seeded[0].ID, http.StatusMethodNotAllowed, api.TypeMethodNotAllowed},
		{http.MethodPut, "/healthz", http.StatusMethodNotAllowed, api.TypeMethodNotAllowed},
		{"PROPFIND", "/api/v1/comments", http.StatusMethodNotAllowed, api.TypeMethodNotAllowed},
	} {
		res := do(t, h, tc.method, tc.target)
		if res.Status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, res.Status, tc.status)
			continue
		}
		if p := res.problem(t); p.Type != tc.typ {
			t.Errorf("%s %s: problem type %q", tc.method, tc.target, p.Type)
		}
		if tc.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.target, res.Header.Get("Allow"))
		}
	}
}
