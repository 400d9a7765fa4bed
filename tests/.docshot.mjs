import { launch, openUser, say, waitText } from './e2e/browser_lib.mjs';
const [MAIN, SIDE, OPS] = process.argv.slice(2);
const b = await launch();
const vp = { width: 1280, height: 800 };
const alice = await openUser(b, 'alice', { room: MAIN, viewport: vp });
await alice.page.evaluate(() => { window.__p = []; window.chat.on('presence', (p) => window.__p.push(JSON.stringify(p))); window.chat.on('joined', (p) => window.__p.push('J' + JSON.stringify(p))); });
const bob = await openUser(b, 'bob', { room: MAIN, viewport: vp });
const carol = await openUser(b, 'carol', { room: MAIN, viewport: vp, noWebSocket: true });
for (const r of [SIDE, OPS]) {
  await alice.page.locator('#join-input').fill(r);
  await alice.page.locator('#join-input').press('Enter');
}
await alice.page.locator('#room-list a', { hasText: MAIN }).click();
await bob.page.locator('#join-input').fill(SIDE);
await bob.page.locator('#join-input').press('Enter');
await say(bob.page, 'Anyone up for lunch at 12:30?');
await say(bob.page, 'The usual place.');
await bob.page.locator('#room-list a', { hasText: MAIN }).click();
const script = [
  [bob, 'Morning! Is the new build on staging yet?'],
  [alice, 'Deployed ten minutes ago. Release notes: https://example.com/releases/1.4'],
  [carol, "Looks good from here. I'm on hotel Wi-Fi that blocks WebSockets: long-poll kicked in and I didn't miss a thing."],
  [bob, "Nice. I'll run the load test after lunch."],
  [alice, 'Thanks both! Checklist:\n✔ staging\n✔ docs\n… screenshot in progress'],
];
for (const [u, text] of script) {
  await say(u.page, text);
  for (const v of [alice, bob, carol]) await waitText(v.page, text);
}
const ok = await alice.page.waitForFunction(() => document.getElementById('member-count').textContent === '3', null, { timeout: 8000 }).then(() => true, () => false);
if (!ok) console.log((await alice.page.evaluate(() => window.__p)).join('\n'));
await bob.page.locator('#input').pressSequentially('Will do', { delay: 30 });
await alice.page.locator('#typing', { hasText: '~bob is typing' }).waitFor();
await alice.page.locator('#input').fill('Great, see you at');
await alice.page.screenshot({ path: '/work/main/docs/screenshot.png' });
await carol.page.setViewportSize({ width: 390, height: 800 });
await carol.page.screenshot({ path: '/work/main/docs/screenshot-phone.png' });
await b.close();
