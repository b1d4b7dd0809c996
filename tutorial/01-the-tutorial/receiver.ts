// Chapter 1: the classic Python tutorial's receiver.py, line for line, in Deno.
//
//     deno run --allow-net --allow-write receiver.ts [HOST] [PORT] [DIR]
//
// It waits for one sender, reads "filename<SEPARATOR>filesize", then writes every byte that
// arrives until the sender closes the connection.

// device's IP address
const SERVER_HOST = Deno.args[0] ?? "0.0.0.0";
const SERVER_PORT = Number(Deno.args[1] ?? 5001);
const OUT_DIR = Deno.args[2] ?? ".";
// receive 4096 bytes each time
const BUFFER_SIZE = 4096;
const SEPARATOR = "<SEPARATOR>";

// create the server socket and bind it to our local address
const server = Deno.listen({ hostname: SERVER_HOST, port: SERVER_PORT });
console.log(`[*] Listening as ${SERVER_HOST}:${server.addr.port}`);
// accept connection if there is any
const client = await server.accept();
// if below code is executed, that means the sender is connected
console.log(`[+] ${JSON.stringify(client.remoteAddr)} is connected.`);

// receive the file infos: ONE read, as the tutorial does (chapter 2 shows why that is a bug)
const buffer = new Uint8Array(BUFFER_SIZE);
const got = await client.read(buffer) ?? 0;
// (latin1: one character per byte, so positions in the text are positions in the buffer)
const received = new TextDecoder("latin1").decode(buffer.subarray(0, got));
const [header, rest] = received.split(SEPARATOR);
const path = new TextDecoder().decode(buffer.subarray(0, header!.length));
// The read may have taken the file's first bytes too. The tutorial loses them; we keep what
// follows the size's digits, which is right unless the file itself starts with a digit.
const sizeText = /^\d*/.exec(rest ?? "")![0];
const glued = buffer.subarray(got - (rest ?? "").length + sizeText.length, got);
// remove absolute path if there is
const filename = path.split("/").at(-1)!;
// convert to integer
const filesize = Number(sizeText);

// start receiving the file from the socket and writing to the file stream
const file = await Deno.create(`${OUT_DIR}/${filename}`);
await file.write(glued);
let done = glued.length;
while (true) {
  // read up to 4096 bytes from the socket (receive)
  const n = await client.read(buffer);
  if (n === null) {
    // nothing is received: file transmitting is done
    break;
  }
  // write to the file the bytes we just received
  await file.write(buffer.subarray(0, n));
  // update the progress line
  done += n;
  const percent = filesize > 0 ? Math.floor((done / filesize) * 100) : 100;
  await Deno.stderr.write(new TextEncoder().encode(`\rReceiving ${filename}: ${percent}%`));
}
console.error();

// close the file, the client socket and the server socket
file.close();
client.close();
server.close();
