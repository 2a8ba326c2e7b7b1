"""One click starts a voice call.

FastRTC's audio component asks for two: "Click to Access Microphone", then its start
button. A visitor meets a single **Talk** button instead: the access button is labelled
Talk, and once the browser has granted the microphone (after the prompt, if any) the
call starts by itself. Only the click that asked for the microphone starts a call, so a
visitor who hangs up stays hung up.
"""
from __future__ import annotations

VOICE_ELEM_ID = "voice"

SCRIPT = """
<script>
(() => {
  const ACCESS = /Click to Access Microphone/;
  let startWanted = false;
  const voice = () => document.getElementById("%(voice)s");
  const buttons = () => Array.from(voice()?.querySelectorAll("button") || []);

  function relabelAccessButton() {
    for (const button of buttons()) {
      const walker = document.createTreeWalker(button, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (ACCESS.test(node.data)) {
          node.data = "Talk";
          button.dataset.cozyAccess = "1";
        }
      }
    }
  }

  function startOnceGranted() {
    if (!startWanted) return;
    const talk = buttons().find(b => !b.dataset.cozyAccess && b.innerText.trim() === "%(start)s");
    if (talk) {
      startWanted = false;
      talk.click();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button");
    if (button && button.dataset.cozyAccess) startWanted = true;
  }, true);
  new MutationObserver(() => { relabelAccessButton(); startOnceGranted(); })
    .observe(document.documentElement, {subtree: true, childList: true, characterData: true});
})();
</script>
"""


def one_click_head(start_label: str) -> str:
    """The page-head script, for `gr.Blocks(head=...)`."""
    return SCRIPT % {"voice": VOICE_ELEM_ID, "start": start_label}
