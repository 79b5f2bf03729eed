//! The chat panel's paths beyond sign-in, send and the online list, as a reader uses them: a
//! rename (over a WebSocket frame and over HTTP), a whisper picked from the online list that
//! follows its recipient's rename, refusals shown in words (blank text, a bad room name,
//! sending signed out), joining and leaving a room, catching up on a room joined later, older
//! messages, room suggestions and signing out. Two pages, one on WebSocket and one on long
//! polling, so the panel is driven over a frame transport and an HTTP one.
use std::time::Duration;

use super::{eval, fill_and_click, in_every_engine, send, sign_in, text, until_true};
use crate::support::spawn_app;
use crate::webdriver::{Browser, Engine};

async fn wait(page: &crate::webdriver::Page<'_>, js: &str, what: &str) {
    let ok = until_true(page, js, Duration::from_secs(10)).await;
    assert!(ok, "{what}: status {:?}", text(page, "#chat-status").await);
}

async fn chat_panel(engine: Engine) {
    let app = spawn_app(&[]).await;
    let (a, b) = tokio::join!(Browser::launch(engine), Browser::launch(engine));
    let (ws, ws_errors) = a.open(&app.url("/demos/ws.html")).await;
    let (lp, lp_errors) = b.open(&app.url("/demos/longpoll.html")).await;
    sign_in(&ws, "alice").await;
    sign_in(&lp, "bob").await;
    // A rename over the WebSocket (a frame) and over HTTP.
    fill_and_click(&ws, "#chat-nick", "alice2", "#chat-signin").await;
    wait(&ws, "document.querySelector('#chat-me').textContent === 'alice2' && document.querySelector('#chat-status').textContent === 'You are now alice2.'", "ws rename").await;
    fill_and_click(&lp, "#chat-nick", "bob2", "#chat-signin").await;
    wait(&lp, "document.querySelector('#chat-me').textContent === 'bob2' && document.querySelector('#chat-signin').textContent === 'Rename'", "lp rename").await;
    // A whisper to someone picked from the online list.
    wait(&ws, "[...document.querySelectorAll('#chat-users .chat-user')].some(b => b.dataset.nick === 'bob2')", "bob2 online").await;
    assert!(eval::<bool>(&ws, "(() => { [...document.querySelectorAll('#chat-users .chat-user')].find(b => b.dataset.nick === 'bob2').click(); return true })()").await);
    wait(&ws, "document.querySelector('#chat-to').value === 'bob2' && document.querySelector('#chat-send').textContent === 'Whisper' && !document.querySelector('#chat-to-clear').hidden", "recipient").await;
    // Picking yourself is refused in words.
    assert!(
        eval::<bool>(
            &ws,
            "(() => { document.querySelector('#chat-users .chat-user.me').click(); return true })()"
        )
        .await
    );
    wait(
        &ws,
        "document.querySelector('#chat-status').textContent.startsWith('That is you')",
        "me click",
    )
    .await;
    send(&ws, "psst").await;
    wait(&lp, "[...document.querySelectorAll('#chat-log .chat-line[data-type=whisper] .chat-text')].some(e => e.textContent === 'psst')", "whisper arrives").await;
    // The recipient follows its rename; clearing it goes back to the room.
    fill_and_click(&lp, "#chat-nick", "bob3", "#chat-signin").await;
    wait(
        &ws,
        "document.querySelector('#chat-to').value === 'bob3'",
        "recipient follows rename",
    )
    .await;
    assert!(
        eval::<bool>(
            &ws,
            "(() => { document.querySelector('#chat-to-clear').click(); return true })()"
        )
        .await
    );
    wait(&ws, "document.querySelector('#chat-to').value === '' && document.querySelector('#chat-send').textContent === 'Send'", "clear").await;
    // Blank text is refused in words.
    send(&ws, "   ").await;
    wait(&ws, "document.querySelector('#chat-status').dataset.kind === 'error' && document.querySelector('#chat-status').textContent.startsWith('A message is 1')", "blank").await;
    // A bad room name is refused; a good one is joined, written to and left.
    fill_and_click(&lp, "#chat-new-room", "bad room", "#chat-join button").await;
    wait(
        &lp,
        "document.querySelector('#chat-status').textContent.startsWith('A room name is')",
        "bad room",
    )
    .await;
    fill_and_click(&lp, "#chat-new-room", "#kitchen", "#chat-join button").await;
    wait(&lp, "document.querySelector('#chat-room').value === 'kitchen' && document.querySelectorAll('#chat-rooms .chat-room-item').length === 2 && document.querySelector('#chat-status').textContent === 'Following #kitchen; messages you send go there.'", "join").await;
    wait(
        &lp,
        "document.querySelector('#chat-users-room').textContent === '#kitchen'",
        "users follow room",
    )
    .await;
    send(&lp, "in the kitchen").await;
    wait(&lp, "[...document.querySelectorAll('#chat-log .chat-line[data-type=message]')].some(e => e.dataset.room === 'kitchen' && e.querySelector('.chat-text').textContent === 'in the kitchen')", "room message").await;
    assert!(eval::<bool>(&lp, "(() => { document.querySelector('#chat-rooms .chat-room-leave[data-room=kitchen]').click(); return true })()").await);
    wait(&lp, "document.querySelectorAll('#chat-rooms .chat-room-item').length === 1 && document.querySelector('#chat-status').textContent === 'Left #kitchen.'", "leave").await;
    // Joining a room later catches up on what was said there.
    fill_and_click(&ws, "#chat-new-room", "kitchen", "#chat-join button").await;
    wait(&ws, "[...document.querySelectorAll('#chat-log .chat-line[data-type=message]')].some(e => e.dataset.room === 'kitchen' && e.querySelector('.chat-text').textContent === 'in the kitchen')", "catch up").await;
    // Older messages.
    assert!(
        eval::<bool>(
            &lp,
            "(() => { document.querySelector('#chat-older').click(); return true })()"
        )
        .await
    );
    wait(&lp, "/^(No older messages in #lobby\\.|Loaded .* of #lobby\\.)$/.test(document.querySelector('#chat-status').textContent)", "older").await;
    // Room suggestions.
    assert!(eval::<bool>(&lp, "(() => { document.querySelector('#chat-new-room').dispatchEvent(new FocusEvent('focus')); return true })()").await);
    wait(
        &lp,
        "document.querySelectorAll('#chat-room-list option').length >= 1",
        "suggest",
    )
    .await;
    // Signed out, sending is refused in words.
    assert!(
        eval::<bool>(
            &lp,
            "(() => { document.querySelector('#chat-signout').click(); return true })()"
        )
        .await
    );
    wait(&lp, "document.querySelector('#chat-status').textContent === 'Signed out.' && document.querySelector('#chat-me').textContent === '' && document.querySelector('#chat').dataset.signedIn === 'false'", "signed out").await;
    send(&lp, "hello?").await;
    wait(&lp, "document.querySelector('#chat-status').textContent === 'Sign in first: pick a nick above.'", "send signed out").await;
    // The connection line names the transport.
    wait(
        &ws,
        "document.querySelector('#chat-conn').textContent.startsWith('Chat over WebSocket')",
        "conn",
    )
    .await;
    for errors in [ws_errors, lp_errors] {
        let errors = errors.all().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }
}
in_every_engine!(chat_panel);
