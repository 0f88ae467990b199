import type { AdminUser, Role } from '@keypin/shared';
import type { AuditRepository } from '../audit/audit.repository';
import type { Paging } from '../admin/common/paging';
import type { Caller } from '../admin/common/roles';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { hashPassword } from './password';
import { publicUser, type UsersRepository } from './users.repository';

/**
 * Admin accounts: the rules (nobody deletes themselves, the last admin
 * stays) and an audit row for every change. Passwords are hashed here and
 * never leave this service in any form but the hash.
 */
export class UsersService {
  constructor(
    private readonly users: UsersRepository,
    private readonly audit: AuditRepository,
  ) {}

  async list(p: Paging): Promise<{ items: AdminUser[]; total: number }> {
    const { items, total } = await this.users.list(p.pageSize, p.offset);
    return { items: items.map(publicUser), total };
  }

  async create(caller: Caller, username: string, password: string, role: Role): Promise<AdminUser> {
    const user = await this.users.create(username, await hashPassword(password), role);
    if (!user) throw new KeypinError('conflict', `The username "${username}" is taken.`);
    const out = publicUser(user);
    await this.audit.record(caller, 'user.create', `user:${user.id}`, null, out);
    return out;
  }

  async remove(caller: Caller, id: number): Promise<AdminUser> {
    if (id === caller.userId) throw new KeypinError('conflict', 'You cannot delete your own account.');
    const target = await this.users.findById(id);
    if (!target) throw notFound(id);
    if (target.role === 'admin' && (await this.users.countAdmins()) <= 1) {
      throw new KeypinError('conflict', 'The last admin cannot be deleted.');
    }
    const deleted = await this.users.delete(id);
    if (!deleted) throw notFound(id);
    const out = publicUser(deleted);
    await this.audit.record(caller, 'user.delete', `user:${id}`, out, null);
    return out;
  }

  async setPassword(caller: Caller, id: number, password: string): Promise<AdminUser> {
    const user = await this.users.setPassword(id, await hashPassword(password));
    if (!user) throw notFound(id);
    await this.audit.record(caller, 'user.password', `user:${id}`, null, { password: 'changed' });
    return publicUser(user);
  }
}

const notFound = (id: number) => new KeypinError('not_found', `No user ${id}.`);
