"""The site's stylesheet and script, written to DIR/site/assets/ (no framework, no build step).

The script never puts index text into the page as HTML: Pagefind's excerpts are parsed
with DOMParser (inert: nothing runs) and rebuilt from text nodes and <mark> only.
"""

CSS = """
:root { font-family: system-ui, sans-serif; color: #1d232b; background: #fafbfc; }
body { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
header nav a { margin-right: 1.2rem; font-weight: 600; }
a { color: #2a5f9e; }
h1 { font-size: 1.5rem; word-break: break-all; }
form.search { display: flex; gap: .5rem; margin: 1rem 0; }
form.search input { flex: 1; font-size: 1.05rem; padding: .45rem .6rem; border: 1px solid #aab; border-radius: 6px; }
form.search button { font-size: 1rem; padding: .45rem 1rem; border-radius: 6px; border: 1px solid #2a5f9e;
  background: #2a5f9e; color: white; }
#results { margin-bottom: 1.5rem; }
#results .hit { padding: .5rem 0; border-bottom: 1px solid #e3e6ea; }
#results .hit a { font-weight: 600; word-break: break-all; }
#results .excerpt { color: #444; margin-top: .2rem; }
mark { background: #ffe58a; padding: 0 .1em; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
td.src { word-break: break-all; }
.status-failed { color: #b03a2e; font-weight: 600; }
.flag { display: inline-block; background: #fdf1d6; border-radius: 4px; padding: 0 .3rem; margin: 0 .2rem .1rem 0;
  font-size: .8rem; }
.pager { margin: 1rem 0; }
.pager a { margin-right: .8rem; }
audio, video { width: 100%; margin: .5rem 0 1rem; }
video { max-height: 60vh; background: black; }
ol.segments { list-style: none; padding: 0; }
ol.segments li { padding: .25rem 0; display: flex; gap: .8rem; }
ol.segments li.playing { background: #eef4fb; }
a.t { font-variant-numeric: tabular-nums; text-decoration: none; min-width: 4.5rem; }
.meta { color: #555; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(440px, 100%), 1fr)); gap: 1rem; }
svg.chart { width: 100%; height: auto; background: white; border: 1px solid #e3e6ea; border-radius: 6px; }
svg .chart-title { font-size: 13px; font-weight: 600; fill: #1d232b; }
svg .tick, svg .legend { font-size: 10px; fill: #555; }
.note { color: #666; font-size: .9rem; }
.media-error { color: #b03a2e; font-weight: 600; word-break: break-all; }
.table-scroll { overflow-x: auto; max-width: 100%; }
.table-scroll td, .table-scroll th { white-space: nowrap; }
"""

JS = """
'use strict';
function markedNodes(html) {
  // Pagefind's excerpt as nodes: only its text and its <mark>s survive.
  const doc = new DOMParser().parseFromString('<body>' + html + '</body>', 'text/html');
  const out = document.createDocumentFragment();
  for (const node of doc.body.childNodes) {
    if (node.nodeName === 'MARK') {
      const mark = document.createElement('mark'); mark.textContent = node.textContent; out.append(mark);
    } else { out.append(document.createTextNode(node.textContent)); }
  }
  return out;
}
async function runSearch(query) {
  const box = document.getElementById('results');
  box.textContent = 'Searching…';
  let pagefind;
  try {
    // Resolved against the page, not this script (assets/): index.html sits beside pagefind/.
    pagefind = await import(new URL('pagefind/pagefind.js', location.href).href);
  } catch (error) {
    box.textContent = location.protocol === 'file:'
      ? 'Search needs the site served over http(s): browsers block it from file://.'
      : 'No search index yet: build the site with transcribe-all site DIR.';
    return;
  }
  const found = await pagefind.search(query);
  const shown = await Promise.all(found.results.slice(0, 50).map(r => r.data()));
  box.textContent = '';
  const count = document.createElement('p');
  count.className = 'note';
  count.textContent = found.results.length + (found.results.length === 1 ? ' file' : ' files') + ' match';
  box.append(count);
  for (const data of shown) {
    const hit = document.createElement('div'); hit.className = 'hit';
    const link = document.createElement('a');
    link.href = data.url;  // Pagefind's URLs are absolute paths, found from where pagefind.js was served
    link.textContent = (data.meta && data.meta.title) || data.url;
    const excerpt = document.createElement('div'); excerpt.className = 'excerpt';
    excerpt.append(markedNodes(data.excerpt || ''));
    hit.append(link, excerpt); box.append(hit);
  }
}
function startSearchPage() {
  const form = document.querySelector('form.search');
  const input = form.querySelector('input[name=q]');
  const query = new URLSearchParams(location.search).get('q');
  if (!document.getElementById('results')) return;
  form.addEventListener('submit', event => {
    event.preventDefault();
    const url = new URL(location.href); url.searchParams.set('q', input.value);
    history.replaceState(null, '', url); runSearch(input.value);
  });
  if (query) { input.value = query; runSearch(query); }
}
const MEDIA_ERRORS = {1: 'loading was aborted', 2: 'a network error', 3: 'the file could not be decoded',
                      4: 'the file was not found, or its format is not supported'};
function showMediaError(player) {
  // A player that cannot load its media says so, instead of sitting at 0:00.
  const box = document.querySelector('.media-error');
  if (!box || !player.error) return;
  const why = MEDIA_ERRORS[player.error.code] || 'an unknown error';
  box.textContent = 'This media cannot be played (' + why + '): ' + (player.currentSrc || player.src)
    + '. Serve DIR with site/media/ in it (transcribe-all site DIR --source SOURCE) or check --media-base-url.';
  box.hidden = false;
}
function startFilePage() {
  const player = document.getElementById('player');
  if (!player) return;
  player.addEventListener('error', () => showMediaError(player));
  showMediaError(player);  // it may have failed before this script ran
  const seek = start => {
    player.currentTime = start;
    const playing = player.play(); if (playing) playing.catch(() => {});
  };
  for (const link of document.querySelectorAll('a.t')) {
    link.addEventListener('click', event => {
      event.preventDefault(); seek(parseFloat(link.dataset.start));
      history.replaceState(null, '', '#t=' + link.dataset.start);
    });
  }
  const rows = [...document.querySelectorAll('ol.segments li')];
  player.addEventListener('timeupdate', () => {
    for (const row of rows) {
      const t = player.currentTime;
      const on = t >= parseFloat(row.dataset.start) && t < parseFloat(row.dataset.end);
      row.classList.toggle('playing', on);
    }
  });
  const at = /^#t=([0-9.]+)$/.exec(location.hash);
  if (at && player.readyState >= 1) player.currentTime = parseFloat(at[1]);  // metadata may already be in
  else if (at) player.addEventListener('loadedmetadata',
                                       () => { player.currentTime = parseFloat(at[1]); }, {once: true});
}
document.addEventListener('DOMContentLoaded', () => { startSearchPage(); startFilePage(); });
"""
