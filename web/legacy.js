// legacy.js: where app.js did not run, load chat-es5.js instead. That is
// an engine without ES modules (it skips <script type="module">), and one
// with modules too old for the modern client (private methods, ?., ??,
// replaceChildren: Chrome/Edge before 86, Firefox before 90, Safari before
// 15), which would otherwise show a blank page. Deferred scripts and
// modules run in document order, so this runs after app.js had its turn;
// app.js sets window.chatModule first thing, once it knows it can run.
// Plain ES3 on purpose.
(function () {
  if (window.chatModule) return;
  var s = document.createElement('script');
  s.src = 'chat-es5.js';
  document.getElementsByTagName('head')[0].appendChild(s);
}());
