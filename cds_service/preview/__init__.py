"""The card preview page: a small EHR in the browser, calling the service's own CDS Hooks endpoints.

Served at `/` (static files under `/preview/`) with the demo population's read-only FHIR endpoint at
`/demo/fhir`. The page is a client: it reads the discovery document, renders each prefetch template
for the chosen demo patient against `/demo/fhir`, and POSTs real hook requests and feedback.

Decisions where the issue was silent:
- On by default in the embedded default (no CDS_JWT_ISSUERS); off when JWT authentication is configured
  unless CDS_PREVIEW=true. The page and `/demo/*` are served without authentication (they hold made-up
  patients only, never data read from an EHR), but the page's hook calls carry no token: with JWT on
  they are refused like any other unauthenticated call, and the page says so. No demo signing key:
  a key the page could use would let anyone call the service as a trusted client.
- Strict Content-Security-Policy (scripts, styles and connections to this origin only, no inline code,
  no framing), and card text is rendered by building DOM nodes (textContent), never as HTML.
"""
