// The clock display of every page that shows the clock feed: the transport pages, the
// compare page's lanes and the automatic-fallback page.

/**
 * The clock display in `section`: the tick's time in UTC, taken from the event's `time`
 * field as sent (no conversion, so it is exactly what the server stamped), and the event id.
 * Elements: [data-clock="time"], [data-clock="id"], [data-clock="raw"] (all optional).
 */
export function createClock(section) {
  const timeEl = section.querySelector('[data-clock="time"]');
  const idEl = section.querySelector('[data-clock="id"]');
  const rawEl = section.querySelector('[data-clock="raw"]');
  let lastSeconds = '';
  let showMillis = false;
  let flip = false;

  return {
    show(event) {
      const match = /T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(String(event.time ?? ''));
      let text;
      if (match) {
        // Ticks come once a second by default, so HH:MM:SS changes with every tick. With
        // --tick-ms under 1000 two ticks can share a second; from the first time that
        // happens, milliseconds are shown too, so the display still changes on every tick.
        if (match[1] === lastSeconds) showMillis = true;
        lastSeconds = match[1];
        text = showMillis ? `${match[1]}.${(match[2] ?? '0').padEnd(3, '0').slice(0, 3)}` : match[1];
      } else {
        text = String(event.time ?? '?');
      }
      if (timeEl) {
        timeEl.textContent = text;
        // Restart a short highlight: two identical animations, alternated, so each tick
        // starts a new one.
        flip = !flip;
        timeEl.classList.toggle('tick-a', flip);
        timeEl.classList.toggle('tick-b', !flip);
      }
      if (idEl) idEl.textContent = String(event.id);
      if (rawEl) rawEl.textContent = JSON.stringify(event);
    },
  };
}
