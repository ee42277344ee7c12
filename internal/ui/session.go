package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// cookieName is the session cookie.
const cookieName = "tandem_session"

// maxSessions bounds the sessions kept; past it the oldest go first.
const maxSessions = 10000

// session is one browser's session: anonymous (before a login, or with
// no keys configured, where it only carries the CSRF token) or logged in
// under a key's name.
type session struct {
	id      string
	csrf    string
	key     string // the name of the key logged in with; "" when anonymous
	expires time.Time
}

// checkCSRF compares a form's token with the session's in constant time.
func (s *session) checkCSRF(token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.csrf))
}

// sessions keeps the sessions of this process in memory.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
	ttl time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, now: now, ttl: ttl}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a new session (logged in under key when not "").
func (ss *sessions) start(key string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.m) >= maxSessions {
		var oldest *session
		for _, s := range ss.m {
			if now.After(s.expires) {
				delete(ss.m, s.id)
			} else if oldest == nil || s.expires.Before(oldest.expires) {
				oldest = s
			}
		}
		if len(ss.m) >= maxSessions && oldest != nil {
			delete(ss.m, oldest.id)
		}
	}
	s := &session{id: randomToken(), csrf: randomToken(), key: key, expires: now.Add(ss.ttl)}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s != nil && ss.now().After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// lookup returns the request's session when it may see pages: logged in
// when keys are configured, any session (or none yet) without keys.
func (u *UI) lookup(r *http.Request) (*session, bool) {
	var s *session
	if c, err := r.Cookie(cookieName); err == nil {
		s = u.sessions.get(c.Value)
	}
	if u.keys {
		return s, s != nil && s.key != ""
	}
	return s, true
}

// session returns the request's session for a page or an action: with
// keys and no login it redirects to the login form (and returns false);
// without keys it starts an anonymous session when there is none, for
// the CSRF token.
func (u *UI) session(w http.ResponseWriter, r *http.Request) (*session, bool) {
	s, ok := u.lookup(r)
	if !ok {
		if r.Method == http.MethodGet {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			u.fail(w, r, nil, http.StatusUnauthorized, "Your session has ended: log in again.")
		}
		return nil, false
	}
	if s == nil {
		s = u.sessions.start("")
		u.setCookie(w, r, s)
	}
	return s, true
}

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, s *session) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.id, Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, Expires: s.expires,
	})
}

func (u *UI) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: -1,
	})
}

// loginPage shows the login form (with keys), or sends to the overview.
func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if !u.keys {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if s, ok := u.lookup(r); ok && s != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	u.renderLogin(w, r, next, "", http.StatusOK)
}

func (u *UI) renderLogin(w http.ResponseWriter, r *http.Request, next, problem string, status int) {
	// A pre-login session carries the CSRF token of the login form.
	var s *session
	if c, err := r.Cookie(cookieName); err == nil {
		s = u.sessions.get(c.Value)
	}
	if s == nil {
		s = u.sessions.start("")
		u.setCookie(w, r, s)
	}
	u.renderStatus(w, r, s, &view{Page: "login", Title: "Log in", Data: map[string]string{"Next": next, "Problem": problem}}, status)
}

// login checks the key and starts a logged-in session.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !u.keys {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	var pre *session
	if c, err := r.Cookie(cookieName); err == nil {
		pre = u.sessions.get(c.Value)
	}
	if pre == nil || !u.sameOrigin(r) || !pre.checkCSRF(r.PostFormValue("csrf")) {
		u.renderLogin(w, r, next, "The form expired: try again.", http.StatusForbidden)
		return
	}
	name, ok := u.opts.Admin.CheckAdminKey(r.PostFormValue("key"))
	if !ok {
		u.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		u.renderLogin(w, r, next, "That is not a key with the admin scope.", http.StatusUnauthorized)
		return
	}
	// A new session id on login: one planted before it is worth nothing.
	u.sessions.end(pre.id)
	s := u.sessions.start(name)
	u.setCookie(w, r, s)
	u.log.Info("dashboard login", "key", name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) (*view, error) {
	u.sessions.end(s.id)
	u.clearCookie(w, r)
	if u.keys {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	} else {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	}
	return nil, nil
}
