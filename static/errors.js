// Records what goes wrong in this page's scripts, for the reader and for the browser tests:
// uncaught errors, failed script/style/image loads, unhandled promise rejections and
// console.error calls. A classic script, so it runs before the page's modules (which are
// deferred); the list is `window.pushpollErrors`, and the footer says how many there were.
(() => {
  const errors = [];
  window.pushpollErrors = errors;
  const note = (line) => {
    errors.push(String(line).slice(0, 500));
    const shown = document.getElementById('page-errors');
    if (shown) {
      shown.hidden = false;
      shown.textContent = `${errors.length} script error${errors.length === 1 ? '' : 's'} on this page; the first: ${errors[0]}`;
    }
  };
  window.addEventListener('error', (e) => {
    if (e instanceof ErrorEvent) {
      note(`uncaught: ${e.message} (${e.filename}:${e.lineno})`);
    } else if (e.target && e.target !== window) {
      // A resource that failed to load (capture phase: these events do not bubble).
      note(`load failed: <${e.target.localName}> ${e.target.src || e.target.href || ''}`);
    }
  }, true);
  window.addEventListener('unhandledrejection', (e) => {
    note(`unhandled rejection: ${e.reason && e.reason.stack ? e.reason.stack.split('\n')[0] : e.reason}`);
  });
  const original = console.error.bind(console);
  console.error = (...args) => {
    note(`console.error: ${args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`);
    original(...args);
  };
})();
