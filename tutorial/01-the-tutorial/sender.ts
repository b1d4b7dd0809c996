// Chapter 1: the classic Python tutorial's sender.py, line for line, in Deno.
//
//     deno run --allow-net --allow-read sender.ts HOST PORT FILE
//
// It connects, sends "filename<SEPARATOR>filesize", then the file in 4096-byte chunks.

const SEPARATOR = "<SEPARATOR>";
const BUFFER_SIZE = 4096; // send 4096 bytes each time step

// the ip address or hostname of the server, the receiver
const host = Deno.args[0] ?? "127.0.0.1";
// the port, let's use 5001
const port = Number(Deno.args[1] ?? 5001);
// the name of file we want to send, make sure it exists
const filename = Deno.args[2] ?? "data.csv";
// get the file size
const filesize = (await Deno.stat(filename)).size;

// create the client socket
console.log(`[+] Connecting to ${host}:${port}`);
const s = await Deno.connect({ hostname: host, port });
console.log("[+] Connected.");

// send the filename and filesize
await s.write(new TextEncoder().encode(`${filename}${SEPARATOR}${filesize}`));
// The receiver reads the header with one read and cannot tell where it ends: give it a moment
// to take the header alone (luck, not a protocol: chapter 2 replaces this with framing).
await new Promise((resolve) => setTimeout(resolve, 50));

// start sending the file
const file = await Deno.open(filename);
const buffer = new Uint8Array(BUFFER_SIZE);
let sent = 0;
while (true) {
  // read the bytes from the file
  const n = await file.read(buffer);
  if (n === null) {
    // file transmitting is done
    break;
  }
  // write until every byte is out: a socket may take only part of what it is given
  // (Python's sendall does this loop for you)
  for (let at = 0; at < n;) at += await s.write(buffer.subarray(at, n));
  // update the progress line
  sent += n;
  const percent = filesize > 0 ? Math.floor((sent / filesize) * 100) : 100;
  await Deno.stderr.write(new TextEncoder().encode(`\rSending ${filename}: ${percent}%`));
}
console.error();

// close the file and the socket
file.close();
s.close();
