package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/gateway/internal/api"
	"github.com/commentflow/commentflow/gateway/internal/apitest"
)

// TestBadInput: each bad request answers 400 with a problem naming every
// offending parameter, and no command reaches the database.
func TestBadInput(t *testing.T) {
	t.Parallel()
	c, commands := countingClient(t)
	h := newServer(t, serverOpts{client: c})

	// Genuine cursors to tamper with and to misuse.
	page, _ := getPage(t, h, "/api/v1/comments?limit=2")
	cur := *page.NextCursor
	postPage, _ := getPage(t, h, "/api/v1/comments?limit=2&post_id="+apitest.Posts[0])
	postCur := *postPage.NextCursor
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	commands.Store(0)

	id := seeded[0].ID
	for _, tc := range []struct {
		name   string
		target string
		params []string // the parameters the problem must name, in order
	}{
		{"limit 0", "?limit=0", []string{"limit"}},
		{"limit 101", "?limit=101", []string{"limit"}},
		{"limit -1", "?limit=-1", []string{"limit"}},
		{"limit abc", "?limit=abc", []string{"limit"}},
		{"limit 1.5", "?limit=1.5", []string{"limit"}},
		{"limit empty", "?limit=", []string{"limit"}},
		{"limit huge", "?limit=99999999999999999999999", []string{"limit"}},
		{"offset -1", "?offset=-1", []string{"offset"}},
		{"offset abc", "?offset=abc", []string{"offset"}},
		{"offset too deep", "?offset=10001", []string{"offset"}},
		{"cursor garbage characters", "?cursor=" + url.QueryEscape("!!not*base64!!"), []string{"cursor"}},
		{"cursor garbage", "?cursor=bm90LWEtY3Vyc29y", []string{"cursor"}},
		{"cursor too long", "?cursor=" + strings.Repeat("A", 300), []string{"cursor"}},
		{"cursor tampered start", "?limit=2&cursor=" + flip(cur, 3), []string{"cursor"}},
		{"cursor tampered middle", "?limit=2&cursor=" + flip(cur, len(cur)/2), []string{"cursor"}},
		{"cursor tampered end", "?limit=2&cursor=" + flip(cur, len(cur)-1), []string{"cursor"}},
		{"cursor truncated", "?limit=2&cursor=" + cur[:len(cur)-4], []string{"cursor"}},
		{"cursor of other filters", "?limit=2&cursor=" + postCur, []string{"cursor"}},
		{"cursor with filter dropped", "?limit=2&post_id=" + apitest.Posts[1] + "&cursor=" + postCur, []string{"cursor"}},
		{"cursor with offset", "?offset=5&cursor=" + cur, []string{"cursor"}},
		{"cursor empty", "?cursor=", []string{"cursor"}},
		{"since yesterday", "?since=yesterday", []string{"since"}},
		{"since date only", "?since=2025-01-02", []string{"since"}},
		{"since lower-case t", "?since=2025-01-02t00:00:00Z", []string{"since"}},
		{"until bad month", "?until=2025-13-01T00:00:00Z", []string{"until"}},
		{"until february 30", "?until=2025-02-30T00:00:00Z", []string{"until"}},
		{"until leap second", "?until=2025-06-30T23:59:60Z", []string{"until"}},
		{"until before since", "?since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", []string{"until"}},
		{"include_total maybe", "?include_total=maybe", []string{"include_total"}},
		{"post_id not a uuid", "?post_id=42", []string{"post_id"}},
		{"unknown parameter", "?foo=1", []string{"foo"}},
		{"unknown parameters and bad limit", "?foo=1&limit=0&bar=2", []string{"foo", "bar", "limit"}},
		{"repeated parameter", "?limit=1&limit=2", []string{"limit"}},
		{"bad percent-encoding", "?name=%zz", []string{"name"}},
		{"semicolon separator", "?limit=1;offset=2", []string{"limit"}},
		{"name too long", "?name=" + strings.Repeat("x", 201), []string{"name"}},
		{"many bad", "?limit=0&offset=-1&since=x&until=y&post_id=z&include_total=w", []string{"limit", "offset", "post_id", "since", "until", "include_total"}},
		// Operator injection: brackets make unknown parameters; JSON or
		// operators in values fail the schemas.
		{"injection name[$ne]", "?" + url.QueryEscape("name[$ne]") + "=x", []string{"name[$ne]"}},
		{"injection post_id[$gt]", "?post_id[$gt]=", []string{"post_id[$gt]"}},
		{"injection $where", "?" + url.QueryEscape("$where") + "=1", []string{"$where"}},
		{"injection json name", "?name=" + url.QueryEscape(`{"$where":"sleep(1000)"}`), []string{"name"}},
		{"injection operator name", "?name=" + url.QueryEscape("$ne"), []string{"name"}},
		{"injection json post_id", "?post_id=" + url.QueryEscape(`{"$gt":""}`), []string{"post_id"}},
		{"injection json since", "?since=" + url.QueryEscape(`{"$gt":0}`), []string{"since"}},
		{"injection json limit", "?limit=" + url.QueryEscape(`{"$gt":0}`), []string{"limit"}},
		{"control character in name", "?name=a%00b", []string{"name"}},
		{"invalid UTF-8 in name", "?name=%FF%FE", []string{"name"}},
		// The item endpoint.
		{"id not a uuid", "/not-a-uuid", []string{"id"}},
		{"id injection", "/" + url.PathEscape(`{"$ne":null}`), []string{"id"}},
		{"id too long", "/" + id + "0", []string{"id"}},
		{"id escaped", "/" + strings.Replace(id, "-", "%2D", 1) + "x", []string{"id"}},
		{"item unknown parameter", "/" + id + "?fields=all", []string{"fields"}},
		{"item list parameter", "/" + id + "?limit=1", []string{"limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/api/v1/comments" + tc.target
			res := get(t, h, target)
			if res.Status != http.StatusBadRequest {
				t.Fatalf("GET %s: %d, want 400: %s", target, res.Status, res.Body)
			}
			p := res.problem(t)
			var named []string
			for _, e := range p.Errors {
				if e.Reason == "" {
					t.Errorf("no reason for %s", e.Parameter)
				}
				if !slices.Contains(named, e.Parameter) {
					named = append(named, e.Parameter)
				}
			}
			if !slices.Equal(named, tc.params) {
				t.Errorf("problem names %v, want %v: %s", named, tc.params, res.Body)
			}
			if p.Type != api.TypeInvalidParameters || p.Title == "" || !strings.HasPrefix(p.Instance, "/api/v1/comments") {
				t.Errorf("problem %+v", p)
			}
			if n := commands.Load(); n != 0 {
				t.Errorf("%d database commands ran for a bad request", n)
			}
		})
	}
}

// TestInjectionIsLiteral: strings that look like operators but pass the
// schema are compared literally, never interpreted.
func TestInjectionIsLiteral(t *testing.T) {
	t.Parallel()
	coll := freshCollection(t)
	cs := apitest.Comments(5, 9, newest)
	cs[0].Name = `Robert"); DROP TABLE comments;--`
	cs[1].Name = "a.b"
	if err := apitest.Insert(apitest.Ctx(t), coll, cs); err != nil {
		t.Fatal(err)
	}
	h := newServer(t, serverOpts{coll: coll})
	for _, tc := range []struct {
		name string
		want int
	}{
		{cs[0].Name, 1},
		{"a.b", 1},
		{"a.*", 0},
		{"/.*/", 0},
		{".*", 0},
	} {
		page, _ := getPage(t, h, "/api/v1/comments?name="+url.QueryEscape(tc.name))
		if len(page.Items) != tc.want {
			t.Errorf("name=%q: %d comments, want %d", tc.name, len(page.Items), tc.want)
		}
	}
}

// TestCursorSurvivesEquivalentFilters: a cursor stays valid when the same
// instant is written differently.
func TestCursorSurvivesEquivalentFilters(t *testing.T) {
	t.Parallel()
	h := newServer(t, serverOpts{})
	since := seeded[200].CreatedAt
	page, _ := getPage(t, h, "/api/v1/comments?limit=5&since="+since.Format(time.RFC3339Nano))
	other := since.In(time.FixedZone("", -7*3600)).Format("2006-01-02T15:04:05.000000-07:00")
	next, _ := getPage(t, h, "/api/v1/comments?limit=5&since="+url.QueryEscape(other)+"&cursor="+*page.NextCursor)
	if got, want := ids(next.Items), storeIDs(seeded[5:10]); !slices.Equal(got, want) {
		t.Errorf("second page\n got %v\nwant %v", got, want)
	}
}
