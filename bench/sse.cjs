// Server-sent events from a fetch() response, for the benchmark clients: calls
// onEvent(eventType, dataText) for each event ("" when it has no `event:` line; several `data:`
// lines joined), skipping `data: [DONE]`; resolves when the body ends.
'use strict';

async function readSse(response, onEvent) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = '', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data && data !== '[DONE]') onEvent(type, data);
    }
  }
}

module.exports = { readSse };
