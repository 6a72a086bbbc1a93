// An oracle for tests/differential.rs: the image groups that containerd
// 1.6/1.7 and CRI-O compute, and the groups runc 1.1 gives, with runc's own
// libcontainer/user parser (Debian's golang-github-opencontainers-runc-dev,
// built in GOPATH mode). The look-ups around the parser are those of
// containerd's oci.WithAdditionalGIDs / WithUser and CRI-O's GetUserInfo.
//
// Input on stdin, repeated: a flags byte (1: passwd present, 2: group
// present), then passwd, group and the user string as u32-LE-length-prefixed
// blobs, then a u32-LE count of gids and the gids (u32 LE) for runc.
// Output: one JSON object per case, one per line.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/opencontainers/runc/libcontainer/user"
)

type lookup struct {
	Ok   bool     `json:"ok"`
	Uid  *uint32  `json:"uid"`
	Gids []uint32 `json:"gids"`
}

type answer struct {
	Containerd lookup  `json:"containerd"`
	Crio       lookup  `json:"crio"`
	Runc       []int64 `json:"runc"`
}

func reader(present bool, data []byte) io.Reader {
	if !present {
		return nil
	}
	return bytes.NewReader(data)
}

// containerd's WithAdditionalGIDs(userstr): the groups it sets, and the uid
// that WithUser gives for the same user string.
func containerd(passwd, group []byte, hasP, hasG bool, userstr string) lookup {
	res := lookup{Ok: true, Gids: []uint32{}}
	var username string
	if uid, err := strconv.Atoi(userstr); err == nil {
		u := uint32(uid)
		res.Uid = &u
		if !hasP {
			return res
		}
		users, err := user.ParsePasswdFilter(bytes.NewReader(passwd), func(u user.User) bool {
			return u.Uid == uid
		})
		if err != nil {
			return lookup{Ok: false}
		}
		if len(users) == 0 {
			return res
		}
		username = users[0].Name
	} else {
		username = userstr
		// WithUsername (a separate step, which fails the container when
		// it fails): the uid of the first entry with that name.
		if hasP {
			users, err := user.ParsePasswdFilter(bytes.NewReader(passwd), func(u user.User) bool {
				return u.Name == username
			})
			if err == nil && len(users) > 0 {
				u := uint32(users[0].Uid)
				res.Uid = &u
			}
		}
	}
	if !hasG {
		return res
	}
	groups, err := user.ParseGroupFilter(bytes.NewReader(group), func(g user.Group) bool {
		// we only want supplemental groups
		if g.Name == username {
			return false
		}
		for _, entry := range g.List {
			if entry == username {
				return true
			}
		}
		return false
	})
	if err != nil {
		return lookup{Ok: false}
	}
	for _, g := range groups {
		res.Gids = append(res.Gids, uint32(g.Gid))
	}
	return res
}

// CRI-O's GetUserInfo(rootfs, userspec).
func crio(passwd, group []byte, hasP, hasG bool, userspec string) lookup {
	eu, err := user.GetExecUser(userspec, nil, reader(hasP, passwd), reader(hasG, group))
	if err != nil {
		return lookup{Ok: false}
	}
	uid := uint32(eu.Uid)
	res := lookup{Ok: true, Uid: &uid, Gids: []uint32{}}
	for _, g := range eu.Sgids {
		res.Gids = append(res.Gids, uint32(g))
	}
	return res
}

// runc 1.1's setupUser: the additional groups for the spec's gids.
func runc(group []byte, hasG bool, gids []uint32) []int64 {
	strs := []string{}
	for _, g := range gids {
		strs = append(strs, strconv.FormatUint(uint64(g), 10))
	}
	got, err := user.GetAdditionalGroups(strs, reader(hasG, group))
	if err != nil {
		return nil
	}
	out := []int64{}
	for _, g := range got {
		out = append(out, int64(g))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func blob(r io.Reader) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for {
		flags, err := in.ReadByte()
		if err == io.EOF {
			return
		}
		if err != nil {
			panic(err)
		}
		passwd, err1 := blob(in)
		group, err2 := blob(in)
		userstr, err3 := blob(in)
		var count uint32
		err4 := binary.Read(in, binary.LittleEndian, &count)
		gids := make([]uint32, count)
		err5 := binary.Read(in, binary.LittleEndian, &gids)
		for _, e := range []error{err1, err2, err3, err4, err5} {
			if e != nil {
				panic(e)
			}
		}
		hasP, hasG := flags&1 != 0, flags&2 != 0
		if err := enc.Encode(answer{
			Containerd: containerd(passwd, group, hasP, hasG, string(userstr)),
			Crio:       crio(passwd, group, hasP, hasG, string(userstr)),
			Runc:       runc(group, hasG, gids),
		}); err != nil {
			panic(err)
		}
	}
}
