#!/usr/bin/env python3
# `muse chat` driven through a pseudo-terminal, as a person would: turns answered and stored,
# reasoning dimmed, /mode and /set, the line history (the up arrow recalls the last line), Ctrl-C
# during an answer stops it and the chat goes on, Ctrl-C at the prompt, /new /list /open
# /export, bad commands answered in place, Ctrl-D leaves; then a pipe with --continue adds to
# the last conversation. Every wait is for output (with a deadline), never a fixed sleep.
# usage: test-cli-chat.py MUSE_BINARY WORK_DIR
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

muse, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
data = os.path.join(work, 'data')
env = dict(os.environ, MUSE_CACHE_DIR=os.path.join(work, 'cache'), OMP_WAIT_POLICY='passive', TERM='xterm')
env.setdefault('MUSE_MODEL', 'smoke')
failures = 0


def check(name, ok, detail=''):
    global failures
    print(('ok   ' if ok else 'FAIL ') + name + ('' if ok else f': {detail!r}'[:2000]), flush=True)
    if not ok:
        failures += 1


args = [muse, 'chat', '--data-dir', data, '--user', 'tester', '--max-tokens', '8', '--budget', '6', '--threads', '2']
pid, fd = pty.fork()
if pid == 0:
    os.execve(muse, args, env)

seen = b''  # everything the terminal showed
pos = 0     # where the last expect's match ended


def expect(pattern, timeout=120):
    """Reads until `pattern` (a regex on bytes) matches what came after the last match; returns that text."""
    global seen, pos
    deadline = time.time() + timeout
    rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern, re.S)
    while True:
        m = rx.search(seen, pos)
        if m:
            out = seen[pos:m.end()]
            pos = m.end()
            return out.decode('utf-8', 'replace')
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError(f'waited {timeout}s for {pattern!r}; the terminal showed:\n' + seen[pos:].decode('utf-8', 'replace')[-3000:])
        r, _, _ = select.select([fd], [], [], min(left, 1.0))
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b''
            if not chunk:
                raise EOFError('muse chat ended; the terminal showed:\n' + seen[pos:].decode('utf-8', 'replace')[-3000:])
            seen += chunk


def send(s):
    os.write(fd, s.encode())


PROMPT = rb'>>> $'  # at the end of what came: the chat waits for a line
try:
    banner = expect(PROMPT, 240)
    check('the chat starts with a banner and a prompt', 'Muse chat on' in banner and '/help' in banner, banner)

    send('hello there\r')
    out = expect(PROMPT)
    check('a turn is answered', len(out.replace('hello there', '').strip(' \r\n>')) > 0, out)

    send('/mode thinking\r')
    check('/mode switches the mode', 'mode: thinking' in expect(PROMPT))
    send('what is 2+2?\r')
    out = expect(PROMPT)
    check('thinking: the reasoning is shown dimmed', '\x1b[2m' in out, out)

    # The up arrow brings back the last line; Enter sends it again.
    send('\x1b[A')
    expect(r'what is 2\+2\?', 30)
    send('\r')
    expect(PROMPT)
    send('/list\r')
    out = expect(PROMPT)
    check('three turns stored in the conversation (the recalled line is one)', re.search(r'\*\s+1 .*hello there\s+6 messages', out), out)

    # Ctrl-C during an answer stops it; the chat goes on.
    send('/mode instant\r')
    expect(PROMPT)
    send('/set max_tokens 4000\r')
    check('/set changes a limit', 'set max_tokens 4000' in expect(PROMPT))
    send('/set max_tokens 99999999\r')
    check('/set refuses a value out of range, naming it', re.search(r'max_tokens must be .* got', expect(PROMPT)))
    send('tell me everything\r')
    expect(r'tell me everything\r\n.{40}', 120)  # the answer is streaming
    t0 = time.time()
    send('\x03')
    out = expect(r'\(stopped\).*>>> $', 60)
    check('Ctrl-C stops the answer and the prompt comes back', True, out)
    check('... at once (well before 4000 tokens)', time.time() - t0 < 30, time.time() - t0)
    send('/set max_tokens 8\r')
    expect(PROMPT)

    # Ctrl-C at the prompt drops the line being typed.
    send('half a line')
    expect('half a line', 30)
    send('\x03')
    expect(PROMPT, 30)
    send('/list\r')
    out = expect(PROMPT)
    check('Ctrl-C at the prompt keeps the chat (and sends nothing)', re.search(r'hello there\s+8 messages', out), out)

    # Bad commands are answered in place.
    send('/open conv_nope\r')
    check('/open of an unknown id says so', 'no conversation' in expect(PROMPT))
    send('/image /nonexistent/shot.png\r')
    check('/image of a missing file names it', re.search(r'/image: .*nonexistent', expect(PROMPT)))
    send('/frobnicate\r')
    check('an unknown command points to /help', '/help' in expect(PROMPT))
    send('/help\r')
    out = expect(PROMPT)
    check('/help lists the commands', all(c in out for c in ('/new', '/open', '/export', '/mode', '/image', '/data')), out)

    # A second conversation; /open goes back to the first; /export writes it.
    send('/new\r')
    expect(PROMPT)
    send('second chat\r')
    expect(PROMPT)
    send('/list\r')
    out = expect(PROMPT)
    check('/list: both conversations, newest first', re.search(r'1 .*second chat.*\n.*2 .*hello there', out), out)
    send('/open 2\r')
    check('/open N opens the Nth of /list', 'opened "hello there"' in expect(PROMPT))
    exported = os.path.join(work, 'first.json')
    send(f'/export {exported}\r')
    expect(PROMPT)
    doc = json.load(open(exported))
    roles = [i['role'] for i in doc['items']]
    check('/export writes the conversation with its traces', doc['title'] == 'hello there' and len(doc['items']) == 8 and
          roles[:2] == ['user', 'assistant'] and 'muse' in doc['items'][1], roles)
    hist = open(os.path.join(data, 'chat_history')).read().replace('\\040', ' ')  # libedit's file escapes spaces
    check('the line history is kept in the data directory', 'what is 2+2?' in hist, hist[:300])

    send('\x04')
    deadline = time.time() + 30
    status = None
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                os.read(fd, 65536)
            except OSError:
                pass
    check('Ctrl-D leaves with status 0', status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)
except (TimeoutError, EOFError) as e:
    check('the pty session', False, str(e))
    try:
        os.kill(pid, 9)
    except OSError:
        pass

# A pipe: one turn per line; --continue adds to the conversation used last.
p = subprocess.run(args + ['--continue'], input=b'one more\n/bye\nnot sent\n', env=env, capture_output=True, timeout=300)
check('a pipe with --continue: status 0, only the answer on stdout', p.returncode == 0 and b'>>>' not in p.stdout and
      len(p.stdout.strip()) > 0, (p.returncode, p.stdout[-500:], p.stderr[-2000:]))
exp = json.loads(subprocess.run([muse, 'users', 'export', 'tester', '--data-dir', data], capture_output=True, env=env, timeout=60).stdout)
by_title = {c['title']: c for c in exp['conversations']}
second = by_title.get('second chat', {}).get('items', [])
check('--continue added the turn to the conversation used last, and /bye ended the pipe', len(second) == 4 and
      second[2]['text'] == 'one more' and not any(i['text'] == 'not sent' for c in exp['conversations'] for i in c['items']),
      [i['text'][:20] for i in second])
bad = subprocess.run([muse, 'chat', 'a prompt'], capture_output=True, env=env, timeout=60)
check('a PROMPT argument is refused with a hint', bad.returncode == 2 and b'muse ask' in bad.stderr, bad.stderr)
bad = subprocess.run([muse, 'chat', '--data-dir', data, '--conversation', 'conv_nope'], capture_output=True, env=env, timeout=300,
                     input=b'')
check('--conversation of an unknown id fails with a message', bad.returncode == 2 and b'no conversation' in bad.stderr, bad.stderr)

print('all passed' if failures == 0 else f'{failures} failed')
sys.exit(1 if failures else 0)
