// Package ui is tandem's dashboard at /ui/: server-rendered pages
// (html/template) with one small script for live updates and selection,
// all embedded in the binary (embed.FS); nothing is loaded from elsewhere.
//
// Pages: /ui/ (overview), /ui/messages, /ui/messages/{id},
// /ui/dead-letters, /ui/targets. They read through the admin API's own
// views and operations (internal/api.Admin) and the engine's store, so a
// page shows what GET /v1/... answers. Live updates come through the
// event streams of internal/api (served here at /ui/events and
// /ui/messages/{id}/events under the page's session): on an event the
// script fetches the page again and swaps its live region.
//
// Invariants:
//
//   - Auth: with no auth.keys, only loopback clients are served. With keys,
//     every page but /ui/login needs a session: the login form takes a key
//     with the admin scope, and the session cookie holds a random session
//     id (never the key), HttpOnly, SameSite=Strict, Path=/ui, Secure
//     under TLS. Sessions live in this process's memory: a restart, or
//     another replica, asks for the key again. Logout ends the session.
//   - Every POST carries the session's CSRF token in a form field and is
//     refused (403) without it; so is a cross-site Sec-Fetch-Site. Forms
//     post to the same origin only (the Content-Security-Policy says so).
//   - Secrets are never shown: target URLs come redacted from the admin
//     views, and values under secret-looking keys (password, token,
//     secret, authorization, api_key, ...) in bodies are replaced.
//   - Pages are readable without the script; with it they update live.
package ui
