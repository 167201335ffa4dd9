/**
 * The page a visitor sees when every node is full or down: it polls the redirector's /api/stats
 * and goes on to the same link the moment a node has room, like a node's own loading page.
 * Without JavaScript a meta refresh retries after Retry-After.
 */
export function waitingPage(retryAfterSeconds: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="${retryAfterSeconds}"></noscript>
<title>Waiting for a free notebook</title>
<style>body{font:16px system-ui,sans-serif;display:flex;align-items:center;justify-content:center;min-height:90vh;color:#333}</style>
</head>
<body>
<main>
<h1>All notebooks are busy</h1>
<p id="status">You will be taken to yours as soon as one is free. Keep this page open.</p>
</main>
<script>
(function poll() {
  fetch('/api/stats', { cache: 'no-store' })
    .then(function (r) { return r.json(); })
    .then(function (s) { if (s.remaining > 0) location.reload(); else setTimeout(poll, 1000); })
    .catch(function () { setTimeout(poll, 2000); });
})();
</script>
</body>
</html>
`;
}
